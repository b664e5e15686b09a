using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace AppKernel.Platform.Ptrace.Tests;

[TestClass]
public sealed class SyscallStopTests
{
    [TestMethod]
    public void EnsureAvailableSucceedsHere()
    {
        using var platform = new PtracePlatform();
        platform.EnsureAvailable();
        Assert.AreEqual("ptrace", platform.Name);
    }

    [TestMethod]
    public void SyscallStopsWithNumberAndArgumentsAndResultReachesProgram()
    {
        Harness.OnThread(() =>
        {
            using var h = new Harness();
            var (_, data) = h.Load(a =>
            {
                a.mov(eax, 1234);
                a.mov(edi, 1);
                a.mov(esi, 2);
                a.mov(edx, 3);
                a.mov(r10d, 4);
                a.mov(r8d, 5);
                a.mov(r9d, 6);
                a.syscall();
                a.mov(__qword_ptr[Harness.DataAddress], rax);
                a.mov(eax, 60);
                a.syscall();
            });
            using var context = h.Platform.CreateExecutionContext(h.Space);
            var state = Harness.NewState();

            var result = context.Switch(state);
            Assert.AreEqual(SwitchReason.Syscall, result.Reason);
            Assert.AreEqual(1234UL, state.Registers.OrigRax);
            for (int i = 0; i < 6; i++)
            {
                Assert.AreEqual((ulong)(i + 1), state.SyscallArgument(i));
            }

            Assert.AreEqual(unchecked((ulong)-38), state.Registers.Rax, "rax is -ENOSYS at a syscall stop");
            Assert.AreEqual(Harness.CodeAddress + 0x28, state.Registers.Rip, "rip is after the syscall instruction");

            state.Registers.Rax = 42;
            result = context.Switch(state);
            Assert.AreEqual(SwitchReason.Syscall, result.Reason);
            Assert.AreEqual(60UL, state.Registers.OrigRax);
            Assert.AreEqual(42UL, h.ReadData(data), "the program saw the result the Sentry wrote");
        });
    }
}
