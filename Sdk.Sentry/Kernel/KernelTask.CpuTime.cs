using AppKernel.Platform;
using AppKernel.Sentry.Kernel.Timers;
using AppKernel.Sentry.Native;

namespace AppKernel.Sentry.Kernel;

// The thread's CPU account: user time from the platform (the program's computing), system time
// from the CPU clock of the task's own host thread (the Sentry's work for it). Where the program
// runs on that same host thread (PlatformCapabilities.CpuTimeInTaskThread: KVM_RUN), the clock
// counts both, and system time is the clock less the platform's figure.
internal sealed partial class KernelTask
{
    private readonly object cpuGate = new();
    private long platformCpuBase;
    private int hostThreadId;
    private long hostThreadBase; // the host thread's clock when the task began on it (pooled threads are reused)
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

                // The host clock first: the platform's figure read after it can only be larger, so the
                // difference never counts program time as the Sentry's.
                long host = HostThreadTimeLocked(ownThread: false);
                long user = platformCpuBase + (context is { } c ? Nanoseconds(c.CpuTime) : 0);
                return new CpuTimes(user, SystemTimeLocked(host, user));
            }
        }
    }

    /// <summary>
    /// The <see cref="Context"/> setter: the CPU a replaced context used stays on the thread's account
    /// (execve replaces it; the thread's exit sets null and closes the account into its process's).
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

            if (next is null && previous is not null)
            {
                long host = HostThreadTimeLocked(ownThread: current == this);
                frozenCpu = new CpuTimes(platformCpuBase, SystemTimeLocked(host, platformCpuBase));
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

    /// <summary>Names the calling host thread (the task's own, first thing it runs) as the one whose CPU clock is the task's system time.</summary>
    private void RecordHostThread()
    {
        lock (cpuGate)
        {
            hostThreadId = LibC.Gettid();
            hostThreadBase = 0;
            hostThreadBase = Math.Max(HostThreadTimeLocked(ownThread: true), 0);
        }
    }

    /// <summary>The system time from the host thread's clock (<paramref name="host"/>, -1: unread) and the user time; never decreasing.</summary>
    private long SystemTimeLocked(long host, long user)
    {
        if (host >= 0)
        {
            long value = (Kernel.Platform.Capabilities & PlatformCapabilities.CpuTimeInTaskThread) != 0 ? host - user : host;
            if (value > lastSystemTime)
            {
                lastSystemTime = value;
            }
        }

        return lastSystemTime;
    }

    /// <summary>The CPU clock of the task's host thread in nanoseconds, or -1 when it is not known or cannot be read.</summary>
    private unsafe long HostThreadTimeLocked(bool ownThread)
    {
        if (hostThreadId == 0)
        {
            return -1;
        }

        long* ts = stackalloc long[2];
        int clock = ownThread ? LibC.CLOCK_THREAD_CPUTIME_ID : LibC.ThreadCpuClock(hostThreadId);
        return LibC.ClockGettime(clock, ts) == 0 ? (ts[0] * 1_000_000_000) + ts[1] - hostThreadBase : -1;
    }

    private static long Nanoseconds(TimeSpan time) => time.Ticks * 100;
}
