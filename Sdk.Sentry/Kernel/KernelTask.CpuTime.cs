using AppKernel.Platform;
using AppKernel.Sentry.Kernel.Timers;
using AppKernel.Sentry.Native;

namespace AppKernel.Sentry.Kernel;

// The thread's CPU account: user time from the platform (the program's computing), system time
// from the CPU clock of the task's own host thread (the Sentry's work for it).
internal sealed partial class KernelTask
{
    private readonly object cpuGate = new();
    private long platformCpuBase;
    private int hostThreadId;
    private bool cpuFrozen;
    private CpuTimes frozenCpu;
    private long lastSystemTime;

    /// <summary>This thread's CPU time so far (CLOCK_THREAD_CPUTIME_ID, RUSAGE_THREAD). Safe from any thread; allocates nothing.</summary>
    public CpuTimes CpuTime
    {
        get
        {
            lock (cpuGate)
            {
                if (cpuFrozen)
                {
                    return frozenCpu;
                }

                long user = platformCpuBase + (context is { } c ? Nanoseconds(c.CpuTime) : 0);
                return new CpuTimes(user, SystemTimeLocked(ownThread: false));
            }
        }
    }

    /// <summary>
    /// The <see cref="Context"/> setter: the CPU a replaced context used stays on the thread's account
    /// (execve replaces it; the thread's exit sets null and closes the account into its process's).
    /// The first context set on the task's own host thread names the host thread whose CPU clock is
    /// the thread's system time.
    /// </summary>
    private void ContextReplaced(IExecutionContext? next)
    {
        IExecutionContext? previous;
        lock (cpuGate)
        {
            previous = context;
            if (previous is not null && !ReferenceEquals(previous, next))
            {
                platformCpuBase += Nanoseconds(previous.CpuTime);
            }

            context = next;
            if (next is not null && hostThreadId == 0 && current == this)
            {
                hostThreadId = LibC.Gettid();
            }

            if (next is null && previous is not null)
            {
                frozenCpu = new CpuTimes(platformCpuBase, SystemTimeLocked(ownThread: current == this));
                cpuFrozen = true;
            }
        }

        if (previous is null && next is not null)
        {
            Group.Timers.AttachThread(this);
        }
        else if (previous is not null && next is null)
        {
            Group.Timers.DetachThread(this);
        }
    }

    private unsafe long SystemTimeLocked(bool ownThread)
    {
        if (hostThreadId == 0)
        {
            return 0;
        }

        long* ts = stackalloc long[2];
        int clock = ownThread ? LibC.CLOCK_THREAD_CPUTIME_ID : LibC.ThreadCpuClock(hostThreadId);
        if (LibC.ClockGettime(clock, ts) == 0)
        {
            long value = ts[0] * 1_000_000_000 + ts[1];
            if (value > lastSystemTime)
            {
                lastSystemTime = value;
            }
        }

        return lastSystemTime;
    }

    private static long Nanoseconds(TimeSpan time) => time.Ticks * 100;
}
