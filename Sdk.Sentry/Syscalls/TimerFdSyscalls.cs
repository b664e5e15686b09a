using AppKernel.Sentry.Abi;
using AppKernel.Sentry.Kernel;
using AppKernel.Sentry.Kernel.Events;
using AppKernel.Sentry.Vfs;
using AppKernel.Syscalls;
using AppKernel.Vfs;

namespace AppKernel.Sentry.Syscalls;

/// <summary>timerfd_create, timerfd_settime and timerfd_gettime (<see cref="TimerFd"/>).</summary>
internal static class TimerFdSyscalls
{
    private const uint TFD_NONBLOCK = (uint)OpenFlags.NonBlocking;
    private const uint TFD_CLOEXEC = (uint)OpenFlags.CloseOnExec;

    [Syscall(283, SupportLevel.Partial, Note = "CLOCK_REALTIME_ALARM and CLOCK_BOOTTIME_ALARM behave as their plain clocks")]
    public static SyscallResult TimerfdCreate(ISyscallContext c)
    {
        var t = c.Task();
        int clock = (int)c.Arguments.A0;
        uint flags = (uint)c.Arguments.A1;
        if ((flags & ~(TFD_NONBLOCK | TFD_CLOEXEC)) != 0 ||
            clock is not (TimeSyscalls.CLOCK_MONOTONIC or TimeSyscalls.CLOCK_REALTIME or TimeSyscalls.CLOCK_REALTIME_ALARM
                or TimeSyscalls.CLOCK_BOOTTIME or TimeSyscalls.CLOCK_BOOTTIME_ALARM))
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        if (clock is TimeSyscalls.CLOCK_REALTIME_ALARM or TimeSyscalls.CLOCK_BOOTTIME_ALARM && !t.Credentials.IsRoot)
        {
            return SyscallResult.Error(Errno.EPERM); // CAP_WAKE_ALARM
        }

        var file = new TimerFd(clock, t.Kernel.Poller);
        var description = new FileDescription(file, null, OpenFlags.ReadWrite | ((OpenFlags)flags & OpenFlags.NonBlocking), "anon_inode:[timerfd]");
        return SyscallResult.Ok(AnonymousFiles.Install(t, description, (flags & TFD_CLOEXEC) != 0));
    }

    [Syscall(286, SupportLevel.Partial, Note = "TFD_TIMER_CANCEL_ON_SET never gives ECANCELED: the sandbox's clocks cannot be set")]
    public static SyscallResult TimerfdSettime(ISyscallContext c)
    {
        var t = c.Task();
        var a = c.Arguments;
        int flags = (int)a.A1;
        var spec = t.Mm.ReadValue<LinuxItimerspec>(a.A2);
        if ((flags & ~(TimerFd.TFD_TIMER_ABSTIME | TimerFd.TFD_TIMER_CANCEL_ON_SET)) != 0 || !Valid(spec.Value) || !Valid(spec.Interval))
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        var timer = Get(t, (int)a.A0);
        var (value, interval) = timer.Set(t, flags, Nanoseconds(spec.Value), Nanoseconds(spec.Interval));
        if (a.A3 != 0)
        {
            t.Mm.WriteValue(a.A3, ToItimerspec(value, interval));
        }

        return SyscallResult.Zero;
    }

    [Syscall(287)]
    public static SyscallResult TimerfdGettime(ISyscallContext c)
    {
        var t = c.Task();
        var timer = Get(t, (int)c.Arguments.A0);
        var (value, interval) = timer.Get();
        t.Mm.WriteValue(c.Arguments.A1, ToItimerspec(value, interval));
        return SyscallResult.Zero;
    }

    private static TimerFd Get(KernelTask t, int fd) =>
        t.Fds.Get(fd).Operations as TimerFd ?? throw ErrnoException.Of(Errno.EINVAL);

    private static bool Valid(in LinuxTimespec ts) => ts.Seconds >= 0 && ts.Nanoseconds is >= 0 and < 1_000_000_000;

    private static long Nanoseconds(in LinuxTimespec ts) =>
        ts.Seconds > long.MaxValue / 1_000_000_000 - 1 ? long.MaxValue / 2 : ts.Seconds * 1_000_000_000 + ts.Nanoseconds;

    private static LinuxItimerspec ToItimerspec(long value, long interval) => new()
    {
        Value = new LinuxTimespec { Seconds = value / 1_000_000_000, Nanoseconds = value % 1_000_000_000 },
        Interval = new LinuxTimespec { Seconds = interval / 1_000_000_000, Nanoseconds = interval % 1_000_000_000 },
    };
}
