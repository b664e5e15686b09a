using System.Diagnostics;
using static Iced.Intel.AssemblerRegisters;

namespace AppKernel.Platform.Kvm.Tests;

[TestClass]
public sealed class ThreadTests
{
    [TestMethod]
    public void InterruptStopsASpinningProgramFromAnotherThread()
    {
        using var m = new Machine();
        m.Load(a =>
        {
            var loop = a.CreateLabel();
            a.Label(ref loop);
            a.inc(rbx);
            a.jmp(loop);
        });
        Machine.OnThread(() =>
        {
            using var context = m.Platform.CreateExecutionContext(m.Space);
            var state = Machine.NewState();
            using var timer = new Timer(_ => context.Interrupt(), null, 200, Timeout.Infinite);
            var watch = Stopwatch.StartNew();
            var result = context.Switch(state);
            Assert.AreEqual(SwitchReason.Interrupted, result.Reason);
            Assert.IsTrue(watch.ElapsedMilliseconds < 5000, $"took {watch.ElapsedMilliseconds} ms");
            Assert.IsTrue(state.Registers.Rbx > 0, "the program ran");
            Assert.IsTrue(state.Registers.Rip >= Machine.Code && state.Registers.Rip < Machine.Code + 16, $"rip 0x{state.Registers.Rip:x} is in the loop");

            // It continues where it was.
            ulong before = state.Registers.Rbx;
            using var again = new Timer(_ => context.Interrupt(), null, 100, Timeout.Infinite);
            Assert.AreEqual(SwitchReason.Interrupted, context.Switch(state).Reason);
            Assert.IsTrue(state.Registers.Rbx > before);
        });
    }

    [TestMethod]
    public void InterruptBeforeSwitchReturnsAtOnce()
    {
        using var m = new Machine();
        m.Load(a => a.syscall());
        Machine.OnThread(() =>
        {
            using var context = m.Platform.CreateExecutionContext(m.Space);
            var state = Machine.NewState();
            context.Interrupt();
            Assert.AreEqual(SwitchReason.Interrupted, context.Switch(state).Reason);
            Assert.AreEqual(SwitchReason.Syscall, context.Switch(state).Reason);
        });
    }

    [TestMethod]
    public void TwoThreadsShareMemory()
    {
        using var m = new Machine();
        var (_, data) = m.Load(a =>
        {
            // Thread A (rdi = 0) publishes 42 and waits for B's answer; B (rdi = 1) waits, answers 43.
            var b = a.CreateLabel();
            var waitB = a.CreateLabel();
            a.test(edi, edi);
            a.jnz(b);
            a.mov(__qword_ptr[Machine.Data], 42);
            a.Label(ref waitB);
            a.pause();
            a.cmp(__qword_ptr[Machine.Data + 8], 43);
            a.jne(waitB);
            a.syscall();
            a.Label(ref b);
            a.pause();
            a.cmp(__qword_ptr[Machine.Data], 42);
            a.jne(b);
            a.mov(__qword_ptr[Machine.Data + 8], 43);
            a.syscall();
        });
        var results = new SwitchReason[2];
        var threads = Enumerable.Range(0, 2).Select(i => new Thread(() =>
        {
            using var context = m.Platform.CreateExecutionContext(m.Space);
            var state = Machine.NewState();
            state.Registers.Rdi = (ulong)i;
            results[i] = context.Switch(state).Reason;
        })).ToArray();
        foreach (var t in threads)
        {
            t.Start();
        }

        foreach (var t in threads)
        {
            Assert.IsTrue(t.Join(TimeSpan.FromSeconds(30)), "a thread did not finish");
        }

        CollectionAssert.AreEqual(new[] { SwitchReason.Syscall, SwitchReason.Syscall }, results);
        Assert.AreEqual(43UL, m.Read(data, 1));
    }

    [TestMethod]
    public void UnmapIsSeenByAnotherRunningVcpu()
    {
        using var m = new Machine();
        long shared = m.MapNew(0xA0_0000, 1, MemoryAccess.ReadWrite);
        var (_, data) = m.Load(a =>
        {
            // Read the shared page in a loop (keeping its translation hot) until it faults.
            var loop = a.CreateLabel();
            a.Label(ref loop);
            a.mov(rax, __qword_ptr[0xA0_0000]);
            a.mov(__qword_ptr[Machine.Data], 1);
            a.jmp(loop);
        });
        SwitchResult result = default;
        var running = new ManualResetEventSlim();
        var thread = new Thread(() =>
        {
            using var context = m.Platform.CreateExecutionContext(m.Space);
            var state = Machine.NewState();
            running.Set();
            result = context.Switch(state);
        });
        thread.Start();
        running.Wait();
        var deadline = Stopwatch.StartNew();
        while (m.Read(data) == 0 && deadline.ElapsedMilliseconds < 5000)
        {
            Thread.Sleep(10);
        }

        Thread.Sleep(100);
        m.Space.Unmap(0xA0_0000, Machine.Page);
        Assert.IsTrue(thread.Join(TimeSpan.FromSeconds(10)), "the other vCPU kept using the unmapped page");
        Assert.AreEqual((SwitchReason.Fault, 0xA0_0000UL, MemoryAccess.Read), (result.Reason, result.FaultAddress, result.Access));
        GC.KeepAlive(shared);
    }
}
