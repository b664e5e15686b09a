using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace AppKernel.Platform.Ptrace.Tests;

[TestClass]
public sealed class AddressSpaceTests
{
    [TestMethod]
    public void StubHoldsOnlyItsPageAndWhatWasMapped()
    {
        using var h = new Harness();
        int pid = h.Space.StubProcessId;

        var before = StubMaps.Read(pid);
        Assert.HasCount(1, before, string.Join("\n", before));
        Assert.AreEqual(h.Platform.MaxUserAddress, before[0].Start);
        Assert.AreEqual(h.Platform.MaxUserAddress + 0x1000, before[0].End);
        Assert.AreEqual("r-xp", before[0].Permissions);

        h.MapNew(0x10_0000, 2, MemoryAccess.ReadWrite);
        h.MapNew(0x20_0000, 1, MemoryAccess.ReadExecute);
        var after = StubMaps.Read(pid);

        Assert.HasCount(3, after, string.Join("\n", after));
        Assert.AreEqual(new StubMaps.Mapping(0x10_0000, 0x10_2000, "rw-s", after[0].Name), after[0]);
        Assert.AreEqual(new StubMaps.Mapping(0x20_0000, 0x20_1000, "r-xs", after[1].Name), after[1]);
        StringAssert.Contains(after[0].Name, "appkernel-memory");
        Assert.AreEqual(before[0], after[2]);
    }

    [TestMethod]
    public void MapReplacesWhatWasThere()
    {
        Harness.OnThread(() =>
        {
            using var h = new Harness();
            const ulong target = 0x50_0000;
            h.Load(a =>
            {
                a.mov(rbx, __qword_ptr[target]);
                a.syscall();
            });
            long first = h.MapNew(target, 1, MemoryAccess.Read);
            long second = h.Memory.Allocate(Harness.Page);
            BitConverter.TryWriteBytes(h.Memory.GetSpan(first, 8), 1UL);
            BitConverter.TryWriteBytes(h.Memory.GetSpan(second, 8), 2UL);
            h.Space.Map(target, Harness.Page, second, MemoryAccess.Read);
            using var context = h.Platform.CreateExecutionContext(h.Space);
            var state = Harness.NewState();

            context.Switch(state);

            Assert.AreEqual(2UL, state.Registers.Rbx);
        });
    }

    [TestMethod]
    public void UnmapThenAccessFaults()
    {
        Harness.OnThread(() =>
        {
            using var h = new Harness();
            h.Load(a =>
            {
                a.mov(rbx, __qword_ptr[Harness.DataAddress]);
                a.syscall();
                a.mov(rbx, __qword_ptr[Harness.DataAddress]);
                a.syscall();
            });
            using var context = h.Platform.CreateExecutionContext(h.Space);
            var state = Harness.NewState();

            Assert.AreEqual(SwitchReason.Syscall, context.Switch(state).Reason);
            h.Space.Unmap(Harness.DataAddress, Harness.Page);
            var result = context.Switch(state);

            Assert.AreEqual(SwitchReason.Fault, result.Reason);
            Assert.AreEqual(1, result.SignalCode, "SEGV_MAPERR");
            Assert.AreEqual(Harness.DataAddress, result.FaultAddress);
        });
    }

    [TestMethod]
    public void ProtectChangesAccess()
    {
        Harness.OnThread(() =>
        {
            using var h = new Harness();
            var (_, data) = h.Load(a =>
            {
                a.mov(__qword_ptr[Harness.DataAddress], rdi);
                a.syscall();
            });
            using var context = h.Platform.CreateExecutionContext(h.Space);
            var state = Harness.NewState();
            state.Registers.Rdi = 9;

            h.Space.Protect(Harness.DataAddress, Harness.Page, MemoryAccess.Read);
            var result = context.Switch(state);
            Assert.AreEqual(SwitchReason.Fault, result.Reason);
            Assert.AreEqual(2, result.SignalCode, "SEGV_ACCERR");

            h.Space.Protect(Harness.DataAddress, Harness.Page, MemoryAccess.ReadWrite);
            result = context.Switch(state);
            Assert.AreEqual(SwitchReason.Syscall, result.Reason);
            Assert.AreEqual(9UL, h.ReadData(data));

            // PROT_NONE: even a read faults.
            h.Space.Protect(Harness.DataAddress, Harness.Page, MemoryAccess.None);
            state.Registers.Rip = Harness.CodeAddress;
            Assert.AreEqual(SwitchReason.Fault, context.Switch(state).Reason);
        });
    }

    [TestMethod]
    public void RangesAtOrAboveTheReservedAreaAreRejected()
    {
        using var h = new Harness();
        ulong max = h.Platform.MaxUserAddress;
        long offset = h.Memory.Allocate(Harness.Page);

        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => h.Space.Map(max, Harness.Page, offset, MemoryAccess.Read));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => h.Space.Map(max - Harness.Page, 2 * Harness.Page, offset, MemoryAccess.Read));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => h.Space.Unmap(max, Harness.Page));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => h.Space.Protect(0x1001, Harness.Page, MemoryAccess.Read));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => h.Space.Map(0x1000, Harness.Page, 7, MemoryAccess.Read));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => h.Space.Map(ulong.MaxValue - 0xfff, Harness.Page, offset, MemoryAccess.Read));

        // The highest page below the reserved area is fine.
        h.Space.Map(max - Harness.Page, Harness.Page, offset, MemoryAccess.Read);
        Assert.AreEqual(max - Harness.Page, StubMaps.Read(h.Space.StubProcessId)[0].Start);
    }

    [TestMethod]
    public void MapFromAThreadThatTracesNothingGoesThroughTheControlThread()
    {
        using var h = new Harness();
        Harness.OnThread(() => h.MapNew(0x30_0000, 1, MemoryAccess.Read));
        h.MapNew(0x31_0000, 1, MemoryAccess.Read);
        var maps = StubMaps.Read(h.Space.StubProcessId);
        Assert.AreEqual(0x30_0000UL, maps[0].Start);
        Assert.AreEqual(0x31_0000UL, maps[1].Start);
    }
}
