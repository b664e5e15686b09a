using System.Diagnostics;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace AppKernel.Platform.Kvm.Tests;

/// <summary>
/// Address spaces and contexts coming and going as the Sentry uses them: fork (a new root, mapped
/// from the child's thread before its first run, the parent's pages made read-only), exit (the
/// vCPU back to the pool, the space disposed and its page-table pages reused) and exec (the whole
/// user half unmapped under a live context).
/// </summary>
[TestClass]
public sealed class LifecycleTests
{
    public TestContext TestContext { get; set; } = null!;

    /// <summary>Reads the data page's first quadword into RAX, then makes syscalls forever.</summary>
    private static void ReadThenSyscall(Assembler a)
    {
        var loop = a.CreateLabel();
        a.mov(rax, __qword_ptr[Machine.Data]);
        a.Label(ref loop);
        a.syscall();
        a.jmp(loop);
    }

    [TestMethod]
    public void AForkedChildMappedFromItsOwnThreadBeforeItsFirstRunRuns()
    {
        using var m = new Machine();
        var (code, data) = m.Load(a =>
        {
            // Parent: syscall, then write the data page (copy-on-write after the fork), syscall.
            a.syscall();
            a.mov(__qword_ptr[Machine.Data + 8], rbx);
            a.syscall();
            a.hlt();
        });
        BitConverter.GetBytes(0x1234UL).CopyTo(m.Memory.GetSpan(data, 8));
        Machine.OnThread(() =>
        {
            using var parent = m.Platform.CreateExecutionContext(m.Space);
            var state = Machine.NewState();
            Assert.AreEqual(SwitchReason.Syscall, parent.Switch(state).Reason);

            // fork, on the parent's thread: a new space, the parent's data read-only, a child context.
            var childSpace = m.Platform.CreateAddressSpace(m.Memory);
            m.Space.Protect(Machine.Data, Machine.Page, MemoryAccess.Read);
            var child = m.Platform.CreateExecutionContext(childSpace);
            parent.LoadExtendedState(state);
            var childState = Machine.NewState();
            childState.CopyFrom(state);
            childState.ExtendedStateDirty = true;

            // The child's own thread: FP state in, memory mirrored, then its first run.
            SwitchResult childResult = default;
            ulong childRax = 0;
            var thread = new Thread(() =>
            {
                child.LoadExtendedState(childState);
                childSpace.Map(Machine.Code, Machine.Page, code, MemoryAccess.ReadExecute);
                childSpace.Map(Machine.Data, Machine.Page, data, MemoryAccess.Read);
                childState.Registers.Rbx = 7;
                childResult = child.Switch(childState);
                childRax = childState.Registers.Rax;
            });
            thread.Start();
            Assert.IsTrue(thread.Join(TimeSpan.FromSeconds(30)), "the child did not stop");
            Assert.AreEqual(SwitchReason.Fault, childResult.Reason, "the child's write to its read-only copy faults");
            Assert.AreEqual(Machine.Data + 8, childResult.FaultAddress);

            // The parent's write faults too (copy-on-write), and runs once the page is writable again.
            state.Registers.Rbx = 9;
            var result = parent.Switch(state);
            Assert.AreEqual(SwitchReason.Fault, result.Reason);
            Assert.AreEqual(MemoryAccess.Write, result.Access);
            m.Space.Protect(Machine.Data, Machine.Page, MemoryAccess.ReadWrite);
            Assert.AreEqual(SwitchReason.Syscall, parent.Switch(state).Reason);
            Assert.AreEqual(9UL, m.Read(data, 1));

            child.Dispose();
            childSpace.Dispose();
        });
    }

    [TestMethod]
    public void APooledVcpuRunsANewSpaceThatReusesTheTablesOfItsLastOne()
    {
        // The triple fault of every fork on KVM: a context's vCPU went back to the pool still running
        // on its space's root, that space was disposed and its root page reused as a table of the next
        // space, and the vCPU's next entry walked that page as its root, trampoline unmapped.
        using var m = new Machine();
        var bytes = Machine.Assemble(Machine.Code, ReadThenSyscall);
        Machine.OnThread(() =>
        {
            for (int round = 0; round < 4; round++)
            {
                var first = m.Platform.CreateAddressSpace(m.Memory);
                var (_, data) = MapProgram(m, first, bytes, 0x1000 + (ulong)round);
                int vcpuId;
                using (var context = (KvmExecutionContext)m.Platform.CreateExecutionContext(first))
                {
                    var state = Machine.NewState();
                    Assert.AreEqual(SwitchReason.Syscall, context.Switch(state).Reason);
                    vcpuId = context.VcpuId;
                }

                first.Dispose();

                // The next space takes the freed pages; guest writes to them (Protect rewrites entries
                // through the service vCPU) make a shadowing hypervisor drop what it cached of the old root.
                var second = m.Platform.CreateAddressSpace(m.Memory);
                (_, data) = MapProgram(m, second, bytes, 0x2000 + (ulong)round);
                for (int i = 0; i < 8; i++)
                {
                    second.Protect(Machine.Data, Machine.Page, i % 2 == 0 ? MemoryAccess.Read : MemoryAccess.ReadWrite);
                }

                using (var context = (KvmExecutionContext)m.Platform.CreateExecutionContext(second))
                {
                    Assert.AreEqual(vcpuId, context.VcpuId, "the pooled vCPU is reused");
                    var state = Machine.NewState();
                    Assert.AreEqual(SwitchReason.Syscall, context.Switch(state).Reason);
                    Assert.AreEqual(0x2000UL + (ulong)round, state.Registers.Rax);
                }

                second.Dispose();
                _ = data;
            }
        });
    }

    [TestMethod]
    public void ASpaceDisposedBeforeItsContextKeepsItsTablesOutOfOtherSpaces()
    {
        using var m = new Machine();
        var bytes = Machine.Assemble(Machine.Code, ReadThenSyscall);
        Machine.OnThread(() =>
        {
            var first = m.Platform.CreateAddressSpace(m.Memory);
            MapProgram(m, first, bytes, 1);
            var context = m.Platform.CreateExecutionContext(first);
            var state = Machine.NewState();
            Assert.AreEqual(SwitchReason.Syscall, context.Switch(state).Reason);
            first.Dispose();

            // Another space, with guest writes to its tables; then the orphaned context runs again.
            var second = m.Platform.CreateAddressSpace(m.Memory);
            MapProgram(m, second, bytes, 2);
            for (int i = 0; i < 8; i++)
            {
                second.Protect(Machine.Data, Machine.Page, i % 2 == 0 ? MemoryAccess.Read : MemoryAccess.ReadWrite);
            }

            var result = context.Switch(Machine.NewState());
            Assert.AreEqual(SwitchReason.Fault, result.Reason, "its tree is empty: a fault, not a triple fault");
            context.Dispose();

            using var other = m.Platform.CreateExecutionContext(second);
            state = Machine.NewState();
            Assert.AreEqual(SwitchReason.Syscall, other.Switch(state).Reason);
            Assert.AreEqual(2UL, state.Registers.Rax);
            second.Dispose();
        });
    }

    [TestMethod]
    public void ExecUnmapsTheWholeUserHalfQuicklyAndTheSameContextRunsTheNewImage()
    {
        using var m = new Machine();
        var bytes = Machine.Assemble(Machine.Code, ReadThenSyscall);
        Machine.OnThread(() =>
        {
            MapProgram(m, m.Space, bytes, 1);

            // Mappings far apart, as a program's (low image, high libraries and stack).
            m.MapNew(0x7f00_0000_0000, 4, MemoryAccess.ReadWrite);
            m.MapNew(0x7f7f_ffff_0000, 4, MemoryAccess.ReadWrite);
            using var context = m.Platform.CreateExecutionContext(m.Space);
            var state = Machine.NewState();
            Assert.AreEqual(SwitchReason.Syscall, context.Switch(state).Reason);
            Assert.AreEqual(1UL, state.Registers.Rax);

            var clock = Stopwatch.StartNew();
            m.Space.Unmap(0x10000, m.Platform.MaxUserAddress - 0x10000);
            clock.Stop();
            TestContext.WriteLine($"Unmap of the whole user half: {clock.Elapsed.TotalMilliseconds:0.00} ms");
            Assert.IsLessThan(TimeSpan.FromSeconds(1), clock.Elapsed);

            state = Machine.NewState();
            var fault = context.Switch(state);
            Assert.AreEqual(SwitchReason.Fault, fault.Reason, "the old image is gone");

            MapProgram(m, m.Space, bytes, 2);
            state = Machine.NewState();
            Assert.AreEqual(SwitchReason.Syscall, context.Switch(state).Reason);
            Assert.AreEqual(2UL, state.Registers.Rax);
        });
    }

    [TestMethod]
    public void CpuTimeCountsTheProgramsComputingAndKeepsItsLastFigureAfterDispose()
    {
        using var m = new Machine();
        m.Load(a =>
        {
            var loop = a.CreateLabel();
            a.Label(ref loop);
            a.add(rbx, 1);
            a.jmp(loop);
        });
        Machine.OnThread(() =>
        {
            var context = m.Platform.CreateExecutionContext(m.Space);
            var state = Machine.NewState();
            Assert.AreEqual(TimeSpan.Zero, context.CpuTime, "nothing ran yet");

            // Read from another thread while the program computes: the figure grows as it runs.
            TimeSpan duringEarly = default, duringLate = default;
            var interrupter = new Thread(() =>
            {
                Thread.Sleep(100);
                duringEarly = context.CpuTime;
                Thread.Sleep(200);
                duringLate = context.CpuTime;
                context.Interrupt();
            });
            var wall = Stopwatch.StartNew();
            interrupter.Start();
            Assert.AreEqual(SwitchReason.Interrupted, context.Switch(state).Reason);
            interrupter.Join();
            wall.Stop();

            var used = context.CpuTime;
            Assert.IsGreaterThan(TimeSpan.FromMilliseconds(20), used);
            Assert.IsLessThanOrEqualTo(wall.Elapsed + TimeSpan.FromMilliseconds(20), used);
            Assert.IsGreaterThan(duringEarly, duringLate, "the figure grows while the program runs");
            Assert.IsLessThanOrEqualTo(used, duringLate);

            // Sentry work on the same host thread is not the program's.
            var busy = Stopwatch.StartNew();
            while (busy.ElapsedMilliseconds < 50)
            {
            }

            Assert.IsLessThan(TimeSpan.FromMilliseconds(5), context.CpuTime - used);

            TimeSpan fromElsewhere = default;
            var reader = new Thread(() => fromElsewhere = context.CpuTime);
            reader.Start();
            reader.Join();
            Assert.AreEqual(used, fromElsewhere);

            context.Dispose();
            Assert.AreEqual(used, context.CpuTime);
        });
    }

    /// <summary>Maps <paramref name="bytes"/> at <see cref="Machine.Code"/> and a data page holding <paramref name="value"/>.</summary>
    private static (long Code, long Data) MapProgram(Machine m, IAddressSpace space, byte[] bytes, ulong value)
    {
        long code = m.Memory.Allocate(Machine.Page);
        bytes.CopyTo(m.Memory.GetSpan(code, bytes.Length));
        space.Map(Machine.Code, Machine.Page, code, MemoryAccess.ReadExecute);
        long data = m.Memory.Allocate(Machine.Page);
        BitConverter.GetBytes(value).CopyTo(m.Memory.GetSpan(data, 8));
        space.Map(Machine.Data, Machine.Page, data, MemoryAccess.ReadWrite);
        return (code, data);
    }

    [TestMethod]
    public void UnmapOfManyPagesOfATableOrOfWholeTablesLeavesTheRestAndRemapsWork()
    {
        using var m = new Machine();
        m.Load(a =>
        {
            var loop = a.CreateLabel();
            a.Label(ref loop);
            a.mov(rax, __qword_ptr[rbx]);
            a.syscall();
            a.jmp(loop);
        });
        const ulong Area = 0x80_0000; // a leaf table of its own
        long offset = m.MapNew(Area, 16, MemoryAccess.ReadWrite);
        for (int i = 0; i < 16; i++)
        {
            BitConverter.GetBytes((ulong)i + 1).CopyTo(m.Memory.GetSpan(offset + (i * Machine.Page), 8));
        }

        Machine.OnThread(() =>
        {
            using var context = m.Platform.CreateExecutionContext(m.Space);
            var state = Machine.NewState();
            (SwitchReason Reason, ulong Value) Read(ulong address)
            {
                state.Registers.Rbx = address;
                var result = context.Switch(state);
                if (result.Reason == SwitchReason.Fault)
                {
                    Assert.AreEqual(address, result.FaultAddress);
                    state.Registers.Rip = Machine.Code; // the Sentry would deliver SIGSEGV; start over
                }

                return (result.Reason, state.Registers.Rax);
            }

            for (int i = 0; i < 16; i++)
            {
                Assert.AreEqual((SwitchReason.Syscall, (ulong)i + 1), Read(Area + ((ulong)i * Machine.Page)));
            }

            // Eight pages out of the middle of the table (the table is replaced by a copy).
            m.Space.Unmap(Area + (4 * Machine.Page), 8 * Machine.Page);
            for (int i = 0; i < 16; i++)
            {
                var expected = i is >= 4 and < 12 ? SwitchReason.Fault : SwitchReason.Syscall;
                Assert.AreEqual(expected, Read(Area + ((ulong)i * Machine.Page)).Reason, $"page {i}");
            }

            Assert.AreEqual((SwitchReason.Syscall, 1UL), Read(Area));
            Assert.AreEqual((SwitchReason.Syscall, 16UL), Read(Area + (15 * Machine.Page)));

            // A page mapped again into the replacement table.
            long again = m.MapNew(Area + (6 * Machine.Page), 1, MemoryAccess.Read);
            BitConverter.GetBytes(0x77UL).CopyTo(m.Memory.GetSpan(again, 8));
            Assert.AreEqual((SwitchReason.Syscall, 0x77UL), Read(Area + (6 * Machine.Page)));

            // The whole 2 MiB (the table is cut off from its directory), then a new mapping there.
            m.Space.Unmap(Area, 2UL << 20);
            Assert.AreEqual(SwitchReason.Fault, Read(Area).Reason);
            Assert.AreEqual(SwitchReason.Fault, Read(Area + (15 * Machine.Page)).Reason);
            long fresh = m.MapNew(Area + Machine.Page, 1, MemoryAccess.Read);
            BitConverter.GetBytes(0x99UL).CopyTo(m.Memory.GetSpan(fresh, 8));
            Assert.AreEqual((SwitchReason.Syscall, 0x99UL), Read(Area + Machine.Page));
            Assert.AreEqual(SwitchReason.Fault, Read(Area).Reason);
        });
    }

    [TestMethod]
    public void TablesOfManyDisposedSpacesAreRecycledAndWorkInNewSpaces()
    {
        using var m = new Machine();
        var bytes = Machine.Assemble(Machine.Code, ReadThenSyscall);
        Machine.OnThread(() =>
        {
            // Enough spaces (root, PDPT, directory and two leaf tables each) to fill the quarantine more than once.
            int spaces = (2 * KvmMachine.QuarantineLimit / 5) + 10;
            for (int i = 0; i < spaces; i++)
            {
                var space = m.Platform.CreateAddressSpace(m.Memory);
                MapProgram(m, space, bytes, (ulong)i);
                if (i % 97 == 0)
                {
                    using var context = m.Platform.CreateExecutionContext(space);
                    var state = Machine.NewState();
                    Assert.AreEqual(SwitchReason.Syscall, context.Switch(state).Reason);
                    Assert.AreEqual((ulong)i, state.Registers.Rax, $"space {i}");
                }

                space.Dispose();
            }

            var last = m.Platform.CreateAddressSpace(m.Memory);
            MapProgram(m, last, bytes, 0xABCD);
            using var lastContext = m.Platform.CreateExecutionContext(last);
            var lastState = Machine.NewState();
            Assert.AreEqual(SwitchReason.Syscall, lastContext.Switch(lastState).Reason);
            Assert.AreEqual(0xABCDUL, lastState.Registers.Rax);
            lastContext.Dispose();
            last.Dispose();
        });
    }
}
