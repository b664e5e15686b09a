using static Iced.Intel.AssemblerRegisters;

namespace AppKernel.Platform.Kvm.Tests;

[TestClass]
public sealed class SyscallTests
{
    [TestMethod]
    public void SyscallStopShowsNumberArgumentsAndResult()
    {
        using var m = new Machine();
        var (_, data) = m.Load(a =>
        {
            a.mov(eax, 42);
            a.mov(edi, 1);
            a.mov(esi, 2);
            a.mov(edx, 3);
            a.mov(r10d, 4);
            a.mov(r8d, 5);
            a.mov(r9d, 6);
            a.syscall();
            a.mov(__qword_ptr[Machine.Data], rax);
            a.mov(eax, 60);
            a.syscall();
        });
        Machine.OnThread(() =>
        {
            using var context = m.Platform.CreateExecutionContext(m.Space);
            var state = Machine.NewState();
            var result = context.Switch(state);
            Assert.AreEqual(SwitchReason.Syscall, result.Reason, $"{result} at rip 0x{state.Registers.Rip:x}");
            ref var r = ref state.Registers;
            Assert.AreEqual(42UL, r.OrigRax);
            Assert.AreEqual((1UL, 2UL, 3UL, 4UL, 5UL, 6UL), (r.Rdi, r.Rsi, r.Rdx, r.R10, r.R8, r.R9));
            Assert.AreEqual(r.Rip, r.Rcx, "syscall leaves the return address in rcx");
            Assert.AreEqual(0x33UL, r.Cs);
            r.Rax = 0x1234_5678_9abc;
            result = context.Switch(state);
            Assert.AreEqual(SwitchReason.Syscall, result.Reason);
            Assert.AreEqual(60UL, state.Registers.OrigRax);
            Assert.AreEqual(0x1234_5678_9abcUL, m.Read(data));
        });
    }
}
