using AppKernel.Sentry.Abi;
using AppKernel.Sentry.Memory;
using AppKernel.Sentry.Syscalls;

namespace AppKernel.Sentry.Kernel.Timers;

/// <summary>
/// A process's timers and CPU account (Linux keeps these in its signal_struct): the CPU time of
/// its live and ended threads and of its reaped children, the interval timers (ITIMER_REAL by the
/// wall clock, ITIMER_VIRTUAL and ITIMER_PROF by CPU time), the POSIX timers of timer_create, and
/// RLIMIT_CPU. A new process (fork) starts with a fresh one; execve keeps it but deletes the
/// POSIX timers; the process's exit stops everything.
/// </summary>
/// <remarks>
/// <para>Wall-clock timers are <see cref="KernelTimer"/>s on the kernel's <see cref="TimerService"/>.
/// CPU time cannot raise an event by itself (the program computes on the platform without the
/// Sentry), so while anything counts CPU time (a CPU itimer, a CPU-clock POSIX timer, a finite
/// RLIMIT_CPU) a watch samples the process's CPU clocks: next after the least CPU time left divided
/// by the threads that could be using it (never sooner than 1 ms, never later than 1 s), so a
/// CPU deadline is seen within about a millisecond, like Linux's tick-based checks.</para>
/// <para>Lock order: the sandbox's <see cref="CpuBudget"/> gate, then this object's gate, then a
/// task's CPU account and the signal queues. Nothing takes this gate while holding the signal
/// handlers' gate.</para>
/// </remarks>
internal sealed partial class ProcessTimers
{
    private const long MinimumCheck = 1_000_000, MaximumCheck = 1_000_000_000;

    private readonly object gate = new();
    private readonly ThreadGroup group;
    private readonly List<KernelTask> threads = new();
    private readonly CpuWatch watch;
    private CpuTimes endedThreads;
    private CpuTimes reapedChildren;
    private ulong maxResidentBytes;
    private ulong childrenMaxResidentBytes;
    private bool stopped;

    public ProcessTimers(ThreadGroup group)
    {
        this.group = group;
        watch = new CpuWatch(this);
        real = new RealTimer(this);
        group.Limits.CpuLimitChanged += UpdateCpuWatch;
        group.Exited.ContinueWith(static (_, state) => ((ProcessTimers)state!).Stop(), this, CancellationToken.None,
            TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
    }

    private TimerService Service => group.Kernel.Timers;

    /// <summary>The process's CPU time: its ended threads and its live ones (CLOCK_PROCESS_CPUTIME_ID, RUSAGE_SELF).</summary>
    public CpuTimes CpuTime
    {
        get
        {
            lock (gate)
            {
                return SampleLocked();
            }
        }
    }

    /// <summary>The CPU time of the children the process has reaped, and theirs (RUSAGE_CHILDREN, tms_cutime).</summary>
    public CpuTimes ChildrenCpuTime
    {
        get
        {
            lock (gate)
            {
                return reapedChildren;
            }
        }
    }

    /// <summary>The largest resident size of the process's images so far, in bytes (ru_maxrss).</summary>
    public ulong MaxResidentBytes
    {
        get
        {
            ulong now = group.Memory?.PeakPopulatedBytes ?? 0;
            lock (gate)
            {
                maxResidentBytes = Math.Max(maxResidentBytes, now);
                return maxResidentBytes;
            }
        }
    }

    /// <summary>An image is about to go (exit, execve): its resident size counts for ru_maxrss, which outlives it.</summary>
    public void ImageReleasing(MemoryManager? image)
    {
        ulong rss = image?.PeakPopulatedBytes ?? 0;
        lock (gate)
        {
            maxResidentBytes = Math.Max(maxResidentBytes, rss);
        }
    }

    /// <summary>The largest ru_maxrss among the reaped children, in bytes.</summary>
    public ulong ChildrenMaxResidentBytes
    {
        get
        {
            lock (gate)
            {
                return childrenMaxResidentBytes;
            }
        }
    }

    /// <summary>The CPU time of the live threads only (the sandbox's CPU budget counts ended ones itself).</summary>
    internal CpuTimes LiveThreadsCpuTime
    {
        get
        {
            lock (gate)
            {
                var total = default(CpuTimes);
                foreach (var task in threads)
                {
                    total += task.CpuTime;
                }

                return total;
            }
        }
    }

    /// <summary>A thread got its first platform context: its CPU time counts from now on.</summary>
    public void AttachThread(KernelTask task)
    {
        lock (gate)
        {
            threads.Add(task);
        }

        UpdateCpuWatch();
    }

    /// <summary>A thread's account closed (it ended): its CPU time moves to the process's ended threads.</summary>
    public void DetachThread(KernelTask task)
    {
        var budget = group.Kernel.CpuBudget;
        if (budget is null)
        {
            Detach(task);
            return;
        }

        lock (budget.Gate)
        {
            budget.ThreadEnded(Detach(task));
        }
    }

    private CpuTimes Detach(KernelTask task)
    {
        lock (gate)
        {
            var final = task.CpuTime;
            if (threads.Remove(task))
            {
                endedThreads += final;
            }

            return final;
        }
    }

    /// <summary>
    /// For wait: <paramref name="child"/> was reaped; its CPU time and its own reaped children's
    /// join this process's children account, as Linux's wait does.
    /// </summary>
    public void ChildReaped(ProcessTimers child)
    {
        var total = child.CpuTime + child.ChildrenCpuTime;
        ulong rss = Math.Max(child.MaxResidentBytes, child.ChildrenMaxResidentBytes);
        lock (gate)
        {
            reapedChildren += total;
            childrenMaxResidentBytes = Math.Max(childrenMaxResidentBytes, rss);
        }
    }

    /// <summary>
    /// execve's point of no return: POSIX timers are deleted and their queued signals dropped;
    /// interval timers, CPU time and pending signals stay. <paramref name="oldImage"/> is the
    /// address space being replaced (its resident size counts for ru_maxrss).
    /// </summary>
    public void ExecCommitted(KernelTask task, MemoryManager? oldImage)
    {
        ImageReleasing(oldImage);
        lock (gate)
        {
            DeleteAllPosixTimersLocked();
        }

        task.Pending.RemoveTimerSignals();
        group.SharedPending.RemoveTimerSignals();
        UpdateCpuWatch();
    }

    /// <summary>The process has ended: no timer of it fires again.</summary>
    private void Stop()
    {
        lock (gate)
        {
            stopped = true;
            realActive = false;
            group.Limits.CpuLimitChanged -= UpdateCpuWatch;
            Service.Cancel(real);
            Service.Cancel(watch);
            DeleteAllPosixTimersLocked();
        }
    }

    private CpuTimes SampleLocked()
    {
        var total = endedThreads;
        foreach (var task in threads)
        {
            total += task.CpuTime;
        }

        return total;
    }

    /// <summary>Re-plans the CPU-time watch after something that counts CPU time changed.</summary>
    public void UpdateCpuWatch()
    {
        lock (gate)
        {
            if (!stopped)
            {
                ScheduleWatchLocked(Kernel.Now, SampleLocked(), RlimitCpu());
            }
        }
    }

    private LinuxRlimit RlimitCpu() => group.Limits.Get(ResourceLimits.CPU);

    /// <summary>The watch fired: sample the CPU clocks, fire what expired, plan the next look.</summary>
    private void CheckCpuTime(long now)
    {
        bool virtualFired, profFired, overSoft = false, overHard = false;
        var limit = RlimitCpu();
        lock (gate)
        {
            if (stopped)
            {
                return;
            }

            var sample = SampleLocked();
            profFired = CheckCpuItimer(ref profExpires, profInterval, sample.Total);
            virtualFired = CheckCpuItimer(ref virtualExpires, virtualInterval, sample.User);
            if (limit.Current != ResourceLimits.Infinity)
            {
                // Linux: SIGKILL at the hard limit; at the soft limit SIGXCPU, and the soft limit
                // moves up a second so the next SIGXCPU comes a CPU-second later.
                if (limit.Max != ResourceLimits.Infinity && sample.Total >= SecondsToNanoseconds(limit.Max))
                {
                    overHard = true;
                }
                else if (sample.Total >= SecondsToNanoseconds(limit.Current))
                {
                    overSoft = true;
                    limit.Current++;
                }
            }

            CheckCpuPosixTimersLocked(sample);
            WakeSleepersLocked(sample);
            if (!overHard)
            {
                ScheduleWatchLocked(now, sample, limit);
            }
        }

        if ((overHard || overSoft) && group.Kernel.Options.Limits.CpuSeconds is not null)
        {
            // RLIMIT_CPU starts at the sandbox's CPU limit: its signals are that limit at work.
            group.Kernel.RecordLimit(SandboxLimit.Cpu);
        }

        if (overHard)
        {
            group.BeginExit(ExitStatus.Killed(Signals.SIGKILL));
            return;
        }

        if (overSoft)
        {
            group.Limits.Set(ResourceLimits.CPU, limit, privileged: true);
            SendKernelSignal(Signals.SIGXCPU);
        }

        if (profFired)
        {
            SendKernelSignal(Signals.SIGPROF);
        }

        if (virtualFired)
        {
            SendKernelSignal(Signals.SIGVTALRM);
        }
    }

    private void ScheduleWatchLocked(long now, CpuTimes sample, LinuxRlimit limit)
    {
        int parallel = Math.Max(1, threads.Count);
        long wait = long.MaxValue;
        void Consider(long cpuLeft, int runners) => wait = Math.Min(wait, Math.Max(0, cpuLeft) / runners);

        if (virtualExpires != 0)
        {
            Consider(virtualExpires - sample.User, parallel);
        }

        if (profExpires != 0)
        {
            Consider(profExpires - sample.Total, parallel);
        }

        if (limit.Current != ResourceLimits.Infinity)
        {
            Consider(SecondsToNanoseconds(limit.Current) - sample.Total, parallel);
        }

        ConsiderCpuPosixTimersLocked(sample, parallel, ref wait);
        ConsiderSleepersLocked(sample, parallel, ref wait);
        if (wait == long.MaxValue)
        {
            Service.Cancel(watch);
            return;
        }

        Service.Schedule(watch, now + Math.Clamp(wait, MinimumCheck, MaximumCheck));
    }

    private static long SecondsToNanoseconds(ulong seconds) =>
        seconds >= (ulong)(long.MaxValue / 1_000_000_000) ? long.MaxValue : (long)seconds * 1_000_000_000;

    /// <summary>A process-directed signal from the kernel (SI_KERNEL): itimers, RLIMIT_CPU.</summary>
    private void SendKernelSignal(int signal) => SignalSyscalls.SendToGroup(group, SignalInfo.Kernel(signal));

    /// <summary>Fires the process's CPU-time checks.</summary>
    private sealed class CpuWatch(ProcessTimers owner) : KernelTimer
    {
        public override void Expire(long now) => owner.CheckCpuTime(now);
    }
}
