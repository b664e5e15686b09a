using System.Collections.Concurrent;
using AppKernel.Platform;
using AppKernel.Sentry.Abi;
using AppKernel.Sentry.Kernel;
using AppKernel.Sentry.Kernel.Timers;
using AppKernel.Sentry.Vfs;
using AppKernel.Vfs;
using Microsoft.Extensions.Logging.Abstractions;

namespace AppKernel.Sentry.Tests.Kernel;

/// <summary>
/// The timer service, the CPU-time machinery and pidfds, driven directly: a kernel without a
/// platform, and execution contexts whose CPU time the test sets.
/// </summary>
[TestClass]
public sealed class TimerTests
{
    private const long Millisecond = 1_000_000;

    [TestMethod]
    public void TheServiceFiresInDeadlineOrderAndNeverEarly()
    {
        using var kernel = NewKernel();
        var fired = new ConcurrentQueue<(int Name, long Deadline, long At)>();
        long now = Sentry.Kernel.Kernel.Now;
        var timers = new[] { (3, now + 30 * Millisecond), (1, now + 10 * Millisecond), (2, now + 20 * Millisecond) }
            .Select(t => new RecordingTimer(t.Item1, t.Item2, fired)).ToArray();
        foreach (var timer in timers)
        {
            kernel.Timers.Schedule(timer, timer.Deadline);
        }

        SpinWait.SpinUntil(() => fired.Count == 3, TimeSpan.FromSeconds(5));
        CollectionAssert.AreEqual(new[] { 1, 2, 3 }, fired.Select(f => f.Name).ToArray());
        Assert.IsTrue(fired.All(f => f.At >= f.Deadline), "a timer fired before its deadline");
        Assert.AreEqual(0, kernel.Timers.Count);
    }

    [TestMethod]
    public void ACancelledTimerDoesNotFireAndAMovedOneFiresOnceAtItsNewTime()
    {
        using var kernel = NewKernel();
        var fired = new ConcurrentQueue<(int Name, long Deadline, long At)>();
        long now = Sentry.Kernel.Kernel.Now;
        // First deadlines far enough out that a test thread preempted under load cannot see them pass
        // before the cancel and the move; the marker comes after all of them.
        var cancelled = new RecordingTimer(1, now + 200 * Millisecond, fired);
        var moved = new RecordingTimer(2, now + 400 * Millisecond, fired);
        var marker = new RecordingTimer(3, now + 500 * Millisecond, fired);
        kernel.Timers.Schedule(cancelled, cancelled.Deadline);
        kernel.Timers.Schedule(moved, moved.Deadline);
        kernel.Timers.Schedule(marker, marker.Deadline);
        kernel.Timers.Cancel(cancelled);
        moved.Deadline = now + 30 * Millisecond;
        kernel.Timers.Schedule(moved, moved.Deadline);
        SpinWait.SpinUntil(() => fired.Any(f => f.Name == 3), TimeSpan.FromSeconds(5));
        CollectionAssert.AreEqual(new[] { 2, 3 }, fired.Select(f => f.Name).ToArray());
        Assert.IsTrue(fired.First().At >= now + 30 * Millisecond);
    }

    [TestMethod]
    [DataRow(100L, 99L, 10L, 100L, 0L)]
    [DataRow(100L, 100L, 10L, 110L, 1L)]
    [DataRow(100L, 105L, 10L, 110L, 1L)]
    [DataRow(100L, 135L, 10L, 140L, 4L)]
    [DataRow(100L, 140L, 10L, 150L, 5L)]
    public void ForwardMovesByWholeIntervalsPastNow(long expires, long now, long interval, long next, long periods)
    {
        Assert.AreEqual(next, ProcessTimers.Forward(expires, now, interval, out long added));
        Assert.AreEqual(periods, added);
    }

    [TestMethod]
    public void CpuClockIdsDecodeAsLinuxEncodesThem()
    {
        Assert.IsTrue(CpuClockId.TryDecode(2, out var process));
        Assert.AreEqual(new CpuClockId(0, false, CpuClockId.Sched), process);
        Assert.IsTrue(CpuClockId.TryDecode(3, out var thread));
        Assert.AreEqual(new CpuClockId(0, true, CpuClockId.Sched), thread);
        Assert.IsTrue(CpuClockId.TryDecode((~1234 << 3) | 1, out var virt)); // clock_getcpuclockid-style, VIRT
        Assert.AreEqual(new CpuClockId(1234, false, CpuClockId.Virt), virt);
        Assert.IsTrue(CpuClockId.TryDecode((~77 << 3) | 4 | 0, out var prof));
        Assert.AreEqual(new CpuClockId(77, true, CpuClockId.Prof), prof);
        Assert.IsFalse(CpuClockId.TryDecode((~3 << 3) | 3, out _), "a dynamic clock fd is not a CPU clock");
        Assert.IsFalse(CpuClockId.TryDecode(1, out _));
        Assert.IsTrue(CpuClockId.TryDecode(-1, out var invalid));
        Assert.AreEqual(3, invalid.Type); // resolves to nothing: EINVAL
    }

    [TestMethod]
    public void AThreadsCpuTimeSurvivesExecAndMovesToTheProcessWhenItEnds()
    {
        using var kernel = NewKernel();
        var task = NewProcess(kernel);
        var first = new FakeContext { CpuTime = TimeSpan.FromMilliseconds(100) };
        task.Context = first;
        Assert.AreEqual(100 * Millisecond, task.Group.Timers.CpuTime.User);

        // execve: a new context; the old one's time stays on the thread's account.
        var second = new FakeContext { CpuTime = TimeSpan.FromMilliseconds(50) };
        task.Context = second;
        Assert.AreEqual(150 * Millisecond, task.CpuTime.User);
        Assert.AreEqual(150 * Millisecond, task.Group.Timers.CpuTime.User);

        // The thread ends: its account closes into the process's.
        task.Context = null;
        second.CpuTime = TimeSpan.FromSeconds(9); // no longer read
        Assert.AreEqual(150 * Millisecond, task.CpuTime.User);
        Assert.AreEqual(150 * Millisecond, task.Group.Timers.CpuTime.User);
    }

    [TestMethod]
    public void CpuItimersFireOnTheProcessCpuClock()
    {
        using var kernel = NewKernel();
        var task = NewProcess(kernel);
        var context = new FakeContext();
        task.Context = context;
        var old = task.Group.Timers.SetInterval(TimerConstants.ITIMER_VIRTUAL, new ProcessTimers.IntervalSetting(10 * Millisecond, 0));
        Assert.AreEqual(default, old);
        Thread.Sleep(50);
        Assert.AreEqual(0UL, task.Group.SharedPending.Pending & Signals.Bit(Signals.SIGVTALRM), "fired without CPU time");

        // Linux adds a tick to the value: 10ms + 4ms of CPU.
        context.CpuTime = TimeSpan.FromMilliseconds(13);
        Thread.Sleep(50);
        Assert.AreEqual(0UL, task.Group.SharedPending.Pending & Signals.Bit(Signals.SIGVTALRM), "fired before the tick");
        context.CpuTime = TimeSpan.FromMilliseconds(15);
        Assert.IsTrue(SpinWait.SpinUntil(() => (task.Group.SharedPending.Pending & Signals.Bit(Signals.SIGVTALRM)) != 0, TimeSpan.FromSeconds(5)));
        Assert.IsTrue(task.DequeueSignal(0, out var info));
        Assert.AreEqual(Signals.SIGVTALRM, info.Signo);
        Assert.AreEqual(Signals.SI_KERNEL, info.Code);
        Assert.AreEqual(default, task.Group.Timers.GetInterval(TimerConstants.ITIMER_VIRTUAL));
    }

    [TestMethod]
    public void RlimitCpuSendsSigxcpuAtTheSoftLimitAndKillsAtTheHardOne()
    {
        using var kernel = NewKernel();
        var task = NewProcess(kernel);
        var context = new FakeContext();
        task.Context = context;
        task.Group.Limits.Set(ResourceLimits.CPU, new LinuxRlimit { Current = 1, Max = 3 }, privileged: false);
        context.CpuTime = TimeSpan.FromMilliseconds(1500);
        Assert.IsTrue(SpinWait.SpinUntil(() => (task.Group.SharedPending.Pending & Signals.Bit(Signals.SIGXCPU)) != 0, TimeSpan.FromSeconds(5)));
        Assert.AreEqual(2UL, task.Group.Limits.Get(ResourceLimits.CPU).Current, "the soft limit moves up a second");
        Assert.IsFalse(task.Group.Exiting);
        context.CpuTime = TimeSpan.FromMilliseconds(3100);
        Assert.IsTrue(SpinWait.SpinUntil(() => task.Group.Exiting, TimeSpan.FromSeconds(5)));
        Assert.AreEqual(ExitStatus.Killed(Signals.SIGKILL), task.Group.ExitStatus);
    }

    [TestMethod]
    public void AProcessCpuTimerQueuesItsSignalWithItsIdAndReArmsOnDelivery()
    {
        using var kernel = NewKernel();
        var task = NewProcess(kernel);
        var context = new FakeContext();
        task.Context = context;
        var timers = task.Group.Timers;
        int id = timers.ReserveTimerId();
        var timer = new PosixTimer(timers, id, 2) { Notify = TimerConstants.SIGEV_SIGNAL, Signal = Signals.SIGRTMIN, Value = 99 };
        Assert.IsTrue(CpuClockId.TryDecode(2, out var clock));
        timer.SetCpuClock(clock, task.Group);
        timers.Publish(timer);
        Assert.IsTrue(timers.TrySetTimer(id, 10 * Millisecond, 10 * Millisecond, absolute: false, out _));
        context.CpuTime = TimeSpan.FromMilliseconds(35);
        Assert.IsTrue(SpinWait.SpinUntil(() => (task.Group.SharedPending.Pending & Signals.Bit(Signals.SIGRTMIN)) != 0, TimeSpan.FromSeconds(5)));
        Assert.IsTrue(task.DequeueSignal(0, out var info));
        Assert.AreEqual(Signals.SI_TIMER, info.Code);
        Assert.AreEqual(id, info.TimerId);
        Assert.AreEqual(99UL, info.Value);
        Assert.AreEqual(0L, info.TimerToken, "the kernel's token never reaches the program");
        Assert.AreEqual(2, info.Overrun, "expiries at 10, 20 and 30ms: two overruns");
        Assert.IsTrue(timers.TryGetTimer(id, out var setting));
        Assert.AreEqual(5 * Millisecond, setting.Value, "re-armed at 40ms");

        // Deleted with its next signal queued: the signal is dropped when taken.
        context.CpuTime = TimeSpan.FromMilliseconds(45);
        Assert.IsTrue(SpinWait.SpinUntil(() => (task.Group.SharedPending.Pending & Signals.Bit(Signals.SIGRTMIN)) != 0, TimeSpan.FromSeconds(5)));
        Assert.IsTrue(timers.TryDeleteTimer(id));
        Assert.IsFalse(task.DequeueSignal(0, out _));
    }

    [TestMethod]
    public void APidfdPollsReadableAndWakesItsWaitersWhenTheProcessExits()
    {
        using var kernel = NewKernel();
        var task = NewProcess(kernel);
        var file = new PidFile(task.Group, null);
        var woken = new ManualResetEventSlim();
        var listener = new Listener(woken);
        file.Waiters.Register(listener, PollEvents.In);
        Assert.AreEqual(PollEvents.None, file.Poll(PollEvents.In));

        task.Group.BeginExit(ExitStatus.Exited(0));
        task.Group.RemoveTask(task);
        Assert.IsTrue(woken.Wait(TimeSpan.FromSeconds(5)));
        Assert.AreEqual(PollEvents.In | PollEvents.ReadNormal | PollEvents.HangUp, file.Poll(PollEvents.In | PollEvents.ReadNormal));
        Assert.AreEqual(PollEvents.In | PollEvents.HangUp, file.Poll(PollEvents.In));
        Assert.AreEqual(PollEvents.HangUp, file.Poll(PollEvents.Out), "POLLHUP is always reported");
        Assert.IsTrue(listener.Events.HasFlag(PollEvents.In));
    }

    private static Sentry.Kernel.Kernel NewKernel() =>
        new(new SandboxOptions(), "test", null!, null!, null!, null!, NullLoggerFactory.Instance);

    private static KernelTask NewProcess(Sentry.Kernel.Kernel kernel) =>
        kernel.CreateProcess(null, new FdTable(), new FsContext(default, default, 0x12), Credentials.ForUser(0, 0), new SignalHandlers(),
            ResourceLimits.Defaults(new SandboxLimits()));

    private sealed class RecordingTimer(int name, long deadline, ConcurrentQueue<(int, long, long)> fired) : KernelTimer
    {
        public long Deadline { get; set; } = deadline;

        public override void Expire(long now) => fired.Enqueue((name, Deadline, now));
    }

    /// <summary>An execution context that never runs anything; the test says how much CPU it used.</summary>
    private sealed class FakeContext : IExecutionContext
    {
        public TimeSpan CpuTime { get; set; }

        public SwitchResult Switch(CpuState state) => throw new NotSupportedException();

        public void Interrupt()
        {
        }

        public void LoadExtendedState(CpuState state)
        {
        }

        public void Dispose()
        {
        }
    }

    private sealed class Listener(ManualResetEventSlim woken) : IEventListener
    {
        public PollEvents Events { get; private set; }

        public void OnEvents(PollEvents events)
        {
            Events |= events;
            woken.Set();
        }
    }
}
