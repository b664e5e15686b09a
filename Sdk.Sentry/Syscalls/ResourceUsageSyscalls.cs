using AppKernel.Sentry.Abi;
using AppKernel.Sentry.Kernel.Timers;
using AppKernel.Syscalls;

namespace AppKernel.Sentry.Syscalls;

/// <summary>Resource usage: getrusage and times.</summary>
internal static class ResourceUsageSyscalls
{
    /// <summary>Linux starts jiffies five minutes before wrapping 32 bits (INITIAL_JIFFIES, at HZ=250), so times() counts from there.</summary>
    private const long InitialJiffies = 4294892296;

    [Syscall(98, SupportLevel.Partial, Note = "CPU times and ru_maxrss; the fault, block-I/O and context-switch counters are 0")]
    public static SyscallResult Getrusage(ISyscallContext c)
    {
        var t = c.Task();
        var timers = t.Group.Timers;
        CpuTimes times;
        ulong maxResident;
        switch ((int)c.Arguments.A0)
        {
            case TimerConstants.RUSAGE_SELF:
                times = timers.CpuTime;
                maxResident = timers.MaxResidentBytes;
                break;
            case TimerConstants.RUSAGE_THREAD:
                times = t.CpuTime;
                maxResident = timers.MaxResidentBytes;
                break;
            case TimerConstants.RUSAGE_CHILDREN:
                times = timers.ChildrenCpuTime;
                maxResident = timers.ChildrenMaxResidentBytes;
                break;
            default:
                return SyscallResult.Error(Errno.EINVAL);
        }

        var usage = new LinuxRusage
        {
            UserTime = TimerSyscalls.ToTimeval(times.User),
            SystemTime = TimerSyscalls.ToTimeval(times.System),
            MaxRss = (long)(maxResident / 1024),
        };
        t.Mm.WriteValue(c.Arguments.A1, usage);
        return SyscallResult.Zero;
    }

    [Syscall(100)]
    public static SyscallResult Times(ISyscallContext c)
    {
        var t = c.Task();
        if (c.Arguments.A0 != 0)
        {
            var self = t.Group.Timers.CpuTime;
            var children = t.Group.Timers.ChildrenCpuTime;
            t.Mm.WriteValue(c.Arguments.A0, new LinuxTms
            {
                UserTime = ClockTicks(self.User),
                SystemTime = ClockTicks(self.System),
                ChildrenUserTime = ClockTicks(children.User),
                ChildrenSystemTime = ClockTicks(children.System),
            });
        }

        // Clock ticks of uptime, from Linux's starting point (jiffies at HZ=250, in USER_HZ units).
        long jiffies = InitialJiffies + (Kernel.Kernel.Now - t.Kernel.BootTime) / TimerConstants.TickNanoseconds;
        return SyscallResult.Ok(jiffies * TimerConstants.TickNanoseconds / (1_000_000_000 / TimerConstants.UserHz));
    }

    private static long ClockTicks(long nanoseconds) => nanoseconds / (1_000_000_000 / TimerConstants.UserHz);
}
