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

    [TestMethod]
    public void RegistersAndFlagsSurviveManySyscallsAndTheReturnAddressIsHonoured()
    {
        using var m = new Machine();
        var (_, data) = m.Load(a =>
        {
            var loop = a.CreateLabel();
            a.mov(ebx, 100);
            a.mov(r12, 0x1122_3344_5566_7788);
            a.Label(ref loop);
            a.stc();
            a.mov(eax, 39);
            a.syscall();
            a.setc(__byte_ptr[Machine.Data]);        // CF comes back from R11
            a.dec(ebx);
            a.jnz(loop);
            a.mov(__qword_ptr[Machine.Data + 8], r12);
            a.mov(eax, 60);
            a.syscall();
        });
        Machine.OnThread(() =>
        {
            using var context = m.Platform.CreateExecutionContext(m.Space);
            var state = Machine.NewState();
            int syscalls = 0;
            while (true)
            {
                var result = context.Switch(state);
                Assert.AreEqual(SwitchReason.Syscall, result.Reason, $"{result} at rip 0x{state.Registers.Rip:x}");
                ref var r = ref state.Registers;
                Assert.AreEqual(r.Rip, r.Rcx);
                Assert.AreEqual(r.Eflags & 0xFFFF_FFFF_FFFF_FEFFUL, r.R11 & 0xFFFF_FFFF_FFFF_FEFFUL, "rflags as r11 holds them");
                Assert.AreEqual(1UL, r.Eflags & 1, "the carry the program set");
                Assert.AreEqual(0x200UL, r.Eflags & 0x200, "interrupts enabled in the program's flags");
                if (r.OrigRax == 60)
                {
                    break;
                }

                syscalls++;
                r.Rax = 7;
            }

            Assert.AreEqual(100, syscalls);
            Assert.AreEqual(1UL, m.Read(data) & 0xFF);
            Assert.AreEqual(0x1122_3344_5566_7788UL, m.Read(data, 1));
        });
    }

    [TestMethod]
    public void TheProgramsOwnPortIoIsSigsegv()
    {
        using var m = new Machine();
        m.Load(a =>
        {
            a.mov(eax, 1);
            a.@out(0x80, al);
            a.@in(al, 0x80);
        });
        Machine.OnThread(() =>
        {
            using var context = m.Platform.CreateExecutionContext(m.Space);
            var state = Machine.NewState();
            var result = context.Switch(state);
            Assert.AreEqual((SwitchReason.Fault, 11, 0x80), (result.Reason, result.Signal, result.SignalCode), $"{result}");

            // The Sentry may resume the program elsewhere after such a fault: at the `in`.
            state.Registers.Rip = Machine.Code + 7;
            result = context.Switch(state);
            Assert.AreEqual((SwitchReason.Fault, 11, 0x80), (result.Reason, result.Signal, result.SignalCode), $"{result}");
        });
    }

    [TestMethod]
    public void AJumpIntoTheSupervisorHalfIsAFaultOrABogusSyscall()
    {
        using var m = new Machine();
        m.Load(a =>
        {
            a.mov(rcx, Machine.Code + 0x100);
            a.mov(eax, 39);
            a.mov(rdx, 0x7F80_4000_0000);
            a.jmp(rdx);
        });
        Machine.OnThread(() =>
        {
            using var context = m.Platform.CreateExecutionContext(m.Space);
            var state = Machine.NewState();
            var result = context.Switch(state);
            if (result.Reason == SwitchReason.Syscall)
            {
                // The fast path's syscall page: a syscall made with the program's own rcx as return address.
                Assert.AreEqual((39UL, Machine.Code + 0x100), (state.Registers.OrigRax, state.Registers.Rip));
            }
            else
            {
                Assert.AreEqual((SwitchReason.Fault, 11), (result.Reason, result.Signal), $"{result}");
            }
        });
    }
}
