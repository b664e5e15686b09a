using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace AppKernel.Platform.Ptrace.Tests;

[TestClass]
public sealed class FaultTests
{
    private const int SegvMapErr = 1, SegvAccErr = 2, IllIllOpn = 2, FpeIntDiv = 1;

    [TestMethod]
    public void WriteToReadOnlyPageFaultsWithAccessError()
    {
        Harness.OnThread(() =>
        {
            using var h = new Harness();
            const ulong readOnly = 0x70_0000;
            h.MapNew(readOnly, 1, MemoryAccess.Read);
            h.Load(a => a.mov(__qword_ptr[readOnly + 0x18], rax));
            using var context = h.Platform.CreateExecutionContext(h.Space);
            var state = Harness.NewState();

            var result = context.Switch(state);

            Assert.AreEqual(SwitchReason.Fault, result.Reason);
            Assert.AreEqual(11, result.Signal);
            Assert.AreEqual(SegvAccErr, result.SignalCode);
            Assert.AreEqual(readOnly + 0x18, result.FaultAddress);
            Assert.AreEqual(Harness.CodeAddress, state.Registers.Rip, "rip stays on the faulting instruction");
        });
    }

    [TestMethod]
    public void ReadOfUnmappedAddressFaultsWithMapError()
    {
        Harness.OnThread(() =>
        {
            using var h = new Harness();
            h.Load(a => a.mov(rax, __qword_ptr[0x1234_5678]));
            using var context = h.Platform.CreateExecutionContext(h.Space);

            var result = context.Switch(Harness.NewState());

            Assert.AreEqual(SwitchReason.Fault, result.Reason);
            Assert.AreEqual(SegvMapErr, result.SignalCode);
            Assert.AreEqual(0x1234_5678UL, result.FaultAddress);
        });
    }

    [TestMethod]
    public void Ud2RaisesSigill()
    {
        Harness.OnThread(() =>
        {
            using var h = new Harness();
            h.Load(a =>
            {
                a.nop();
                a.ud2();
            });
            using var context = h.Platform.CreateExecutionContext(h.Space);

            var result = context.Switch(Harness.NewState());

            Assert.AreEqual(SwitchReason.Signal, result.Reason);
            Assert.AreEqual(4, result.Signal);
            Assert.AreEqual(IllIllOpn, result.SignalCode);
            Assert.AreEqual(Harness.CodeAddress + 1, result.FaultAddress);
        });
    }

    [TestMethod]
    public void DivideByZeroRaisesSigfpe()
    {
        Harness.OnThread(() =>
        {
            using var h = new Harness();
            h.Load(a =>
            {
                a.mov(eax, 7);
                a.xor(edx, edx);
                a.xor(ecx, ecx);
                a.div(ecx);
            });
            using var context = h.Platform.CreateExecutionContext(h.Space);
            var state = Harness.NewState();

            var result = context.Switch(state);

            Assert.AreEqual(SwitchReason.Signal, result.Reason);
            Assert.AreEqual(8, result.Signal);
            Assert.AreEqual(FpeIntDiv, result.SignalCode);
            Assert.AreEqual(state.Registers.Rip, result.FaultAddress);
        });
    }

    [TestMethod]
    public void Int3RaisesSigtrapAndTheSignalIsSuppressed()
    {
        Harness.OnThread(() =>
        {
            using var h = new Harness();
            h.Load(a =>
            {
                a.int3();
                a.mov(eax, 77);
                a.syscall();
            });
            using var context = h.Platform.CreateExecutionContext(h.Space);
            var state = Harness.NewState();

            var result = context.Switch(state);
            Assert.AreEqual(SwitchReason.Signal, result.Reason);
            Assert.AreEqual(5, result.Signal);

            // Suppressed, not delivered: the program goes on to its syscall.
            result = context.Switch(state);
            Assert.AreEqual(SwitchReason.Syscall, result.Reason);
            Assert.AreEqual(77UL, state.Registers.OrigRax);
        });
    }

    [TestMethod]
    public void SentryCanResolveAFaultAndResume()
    {
        Harness.OnThread(() =>
        {
            using var h = new Harness();
            const ulong lazy = 0x80_0000;
            h.Load(a =>
            {
                a.mov(rax, __qword_ptr[lazy]);
                a.mov(rdi, rax);
                a.mov(eax, 1);
                a.syscall();
            });
            using var context = h.Platform.CreateExecutionContext(h.Space);
            var state = Harness.NewState();

            var result = context.Switch(state);
            Assert.AreEqual(SwitchReason.Fault, result.Reason);

            // Map the page on demand from the tracer thread (fast path), then retry the instruction.
            long offset = h.MapNew(lazy, 1, MemoryAccess.Read);
            BitConverter.TryWriteBytes(h.Memory.GetSpan(offset, 8), 0xfeedUL);
            result = context.Switch(state);
            Assert.AreEqual(SwitchReason.Syscall, result.Reason);
            Assert.AreEqual(0xfeedUL, state.Registers.Rdi);
        });
    }
}
