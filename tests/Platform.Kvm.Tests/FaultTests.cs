using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace AppKernel.Platform.Kvm.Tests;

[TestClass]
public sealed class FaultTests
{
    private const int SIGILL = 4, SIGTRAP = 5, SIGFPE = 8, SIGSEGV = 11;

    private static (SwitchResult Result, CpuState State) RunOnce(Machine m, Action<Assembler> program)
    {
        m.Load(program);
        SwitchResult result = default;
        var state = Machine.NewState();
        Machine.OnThread(() =>
        {
            using var context = m.Platform.CreateExecutionContext(m.Space);
            result = context.Switch(state);
        });
        return (result, state);
    }

    [TestMethod]
    public void ReadOfUnmappedMemoryIsMapErrWithAddressAndReadAccess()
    {
        using var m = new Machine();
        var (result, state) = RunOnce(m, a => a.mov(rax, __qword_ptr[0x1234_5000]));
        Assert.AreEqual(new SwitchResult(SwitchReason.Fault, SIGSEGV, 1, 0x1234_5000, MemoryAccess.Read), result);
        Assert.AreEqual(Machine.Code, state.Registers.Rip, "rip stays on the faulting instruction");
    }

    [TestMethod]
    public void WriteToReadOnlyMemoryIsAccErrWrite()
    {
        using var m = new Machine();
        m.MapNew(0x80_0000, 1, MemoryAccess.Read);
        var (result, _) = RunOnce(m, a => a.mov(__qword_ptr[0x80_0010], rax));
        Assert.AreEqual(new SwitchResult(SwitchReason.Fault, SIGSEGV, 2, 0x80_0010, MemoryAccess.Write), result);
    }

    [TestMethod]
    public void ExecutionOfNonExecutableMemoryIsAnExecuteFault()
    {
        using var m = new Machine();
        m.MapNew(0x80_0000, 1, MemoryAccess.ReadWrite);
        var (result, _) = RunOnce(m, a =>
        {
            a.mov(eax, 0x80_0000);
            a.jmp(rax);
        });
        Assert.AreEqual(new SwitchResult(SwitchReason.Fault, SIGSEGV, 2, 0x80_0000, MemoryAccess.Execute), result);
    }

    [TestMethod]
    public void Ud2IsSigill()
    {
        using var m = new Machine();
        var (result, state) = RunOnce(m, a => a.ud2());
        Assert.AreEqual(SwitchReason.Signal, result.Reason);
        Assert.AreEqual((SIGILL, 2, Machine.Code), (result.Signal, result.SignalCode, result.FaultAddress));
        Assert.AreEqual(Machine.Code, state.Registers.Rip);
    }

    [TestMethod]
    public void DivideByZeroIsSigfpeIntdiv()
    {
        using var m = new Machine();
        var (result, _) = RunOnce(m, a =>
        {
            a.xor(ecx, ecx);
            a.mov(eax, 7);
            a.cdq();
            a.idiv(ecx);
        });
        Assert.AreEqual((SwitchReason.Signal, SIGFPE, 1), (result.Reason, result.Signal, result.SignalCode));
    }

    [TestMethod]
    public void Int3IsSigtrapAfterTheInstruction()
    {
        using var m = new Machine();
        var (result, state) = RunOnce(m, a =>
        {
            a.mov(ebx, 77);
            a.int3();
        });
        Assert.AreEqual((SwitchReason.Signal, SIGTRAP), (result.Reason, result.Signal));
        Assert.AreEqual(Machine.Code + 6, state.Registers.Rip);
        Assert.AreEqual(77UL, state.Registers.Rbx);
    }

    [TestMethod]
    public void GeneralProtectionIsSigsegvSiKernel()
    {
        using var m = new Machine();
        var (result, _) = RunOnce(m, a => a.hlt());
        Assert.AreEqual(new SwitchResult(SwitchReason.Fault, SIGSEGV, 0x80, 0), result);
    }

    [TestMethod]
    public void UserCannotTouchTheTrampoline()
    {
        using var m = new Machine();
        var (result, _) = RunOnce(m, a =>
        {
            a.mov(rax, m.Platform.MaxUserAddress);
            a.mov(rax, __qword_ptr[rax]);
        });
        Assert.AreEqual((SwitchReason.Fault, SIGSEGV, 1, m.Platform.MaxUserAddress), (result.Reason, result.Signal, result.SignalCode, result.FaultAddress));
    }

    [TestMethod]
    public void UnmapThenAccessFaults()
    {
        using var m = new Machine();
        var (_, data) = m.Load(a =>
        {
            a.mov(__qword_ptr[Machine.Data], rax);
            a.syscall();
            a.mov(__qword_ptr[Machine.Data], rax);
        });
        Machine.OnThread(() =>
        {
            using var context = m.Platform.CreateExecutionContext(m.Space);
            var state = Machine.NewState();
            state.Registers.Rax = 5;
            Assert.AreEqual(SwitchReason.Syscall, context.Switch(state).Reason);
            Assert.AreEqual(5UL, m.Read(data));
            m.Space.Unmap(Machine.Data, Machine.Page);
            var result = context.Switch(state);
            Assert.AreEqual(new SwitchResult(SwitchReason.Fault, SIGSEGV, 1, Machine.Data, MemoryAccess.Write), result);
        });
    }

    [TestMethod]
    public void ProtectThenWriteFaultsAndProtectBackLetsItRun()
    {
        using var m = new Machine();
        var (_, data) = m.Load(a =>
        {
            a.mov(__qword_ptr[Machine.Data], rax);
            a.syscall();
            a.mov(__qword_ptr[Machine.Data], rax);
            a.syscall();
        });
        Machine.OnThread(() =>
        {
            using var context = m.Platform.CreateExecutionContext(m.Space);
            var state = Machine.NewState();
            state.Registers.Rax = 5;
            Assert.AreEqual(SwitchReason.Syscall, context.Switch(state).Reason);
            m.Space.Protect(Machine.Data, Machine.Page, MemoryAccess.Read);
            state.Registers.Rax = 6;
            var result = context.Switch(state);
            Assert.AreEqual(new SwitchResult(SwitchReason.Fault, SIGSEGV, 2, Machine.Data, MemoryAccess.Write), result);
            m.Space.Protect(Machine.Data, Machine.Page, MemoryAccess.ReadWrite);
            Assert.AreEqual(SwitchReason.Syscall, context.Switch(state).Reason);
            Assert.AreEqual(6UL, m.Read(data));
        });
    }
}
