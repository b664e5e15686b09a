using AppKernel.Sentry.Abi;
using AppKernel.Sentry.Kernel;
using AppKernel.Sentry.Kernel.Timers;
using AppKernel.Syscalls;

namespace AppKernel.Sentry.Syscalls;

/// <summary>Interval timers (alarm, setitimer, getitimer) and POSIX timers (timer_create and friends).</summary>
internal static class TimerSyscalls
{
    private const long NanosecondsPerSecond = 1_000_000_000;

    [Syscall(36)]
    public static SyscallResult Getitimer(ISyscallContext c)
    {
        var t = c.Task();
        int which = (int)c.Arguments.A0;
        if (which is not (TimerConstants.ITIMER_REAL or TimerConstants.ITIMER_VIRTUAL or TimerConstants.ITIMER_PROF))
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        t.Mm.WriteValue(c.Arguments.A1, ToItimerval(t.Group.Timers.GetInterval(which)));
        return SyscallResult.Zero;
    }

    [Syscall(38)]
    public static SyscallResult Setitimer(ISyscallContext c)
    {
        var t = c.Task();
        var a = c.Arguments;
        int which = (int)a.A0;

        // Linux still takes a NULL new value as zero (disarm).
        var value = a.A1 != 0 ? t.Mm.ReadValue<LinuxItimerval>(a.A1) : default;
        if (!IsValid(value.Value) || !IsValid(value.Interval))
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        if (which is not (TimerConstants.ITIMER_REAL or TimerConstants.ITIMER_VIRTUAL or TimerConstants.ITIMER_PROF))
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        var old = t.Group.Timers.SetInterval(which, new ProcessTimers.IntervalSetting(ToNanoseconds(value.Value), ToNanoseconds(value.Interval)));
        if (a.A2 != 0)
        {
            t.Mm.WriteValue(a.A2, ToItimerval(old));
        }

        return SyscallResult.Zero;
    }

    [Syscall(37)]
    public static SyscallResult Alarm(ISyscallContext c)
    {
        var t = c.Task();
        uint seconds = (uint)c.Arguments.A0;
        var old = t.Group.Timers.SetInterval(TimerConstants.ITIMER_REAL, new ProcessTimers.IntervalSetting(seconds * NanosecondsPerSecond, 0));

        // Linux rounds the time left to the nearest second, but never reports 0 for a pending alarm.
        var left = ToTimeval(old.Value);
        long result = left.Seconds;
        if ((left.Seconds == 0 && left.Microseconds != 0) || left.Microseconds >= 500_000)
        {
            result++;
        }

        return SyscallResult.Ok((uint)result);
    }

    [Syscall(222, SupportLevel.Partial, Note = "CPU-clock timers measure the caller's own process or threads (another process's clock gives EINVAL); alarm clocks give EOPNOTSUPP (no RTC)")]
    public static SyscallResult TimerCreate(ISyscallContext c)
    {
        var t = c.Task();
        var a = c.Arguments;
        int clock = (int)a.A0;
        LinuxSigevent? sigevent = a.A1 != 0 ? t.Mm.ReadValue<LinuxSigevent>(a.A1) : null;

        bool cpu = CpuClockId.TryDecode(clock, out var cpuClock);
        bool alarm = clock is TimeSyscalls.CLOCK_REALTIME_ALARM or TimeSyscalls.CLOCK_BOOTTIME_ALARM;
        if (!cpu && !alarm)
        {
            switch (clock)
            {
                case TimeSyscalls.CLOCK_REALTIME or TimeSyscalls.CLOCK_MONOTONIC or TimeSyscalls.CLOCK_BOOTTIME or TimeSyscalls.CLOCK_TAI:
                    break;
                case TimeSyscalls.CLOCK_MONOTONIC_RAW or TimeSyscalls.CLOCK_REALTIME_COARSE or TimeSyscalls.CLOCK_MONOTONIC_COARSE:
                    return SyscallResult.Error(Errno.EOPNOTSUPP);
                case < 0: // a dynamic clock fd: no timers
                    return SyscallResult.Error(Errno.EOPNOTSUPP);
                default:
                    return SyscallResult.Error(Errno.EINVAL);
            }
        }

        // Each timer holds one of the user's RLIMIT_SIGPENDING slots.
        if (SignalQueueing.OverSigpendingLimit(t))
        {
            return SyscallResult.Error(Errno.EAGAIN);
        }

        // As on Linux the id is taken first: a failure past this point still uses one up.
        var timers = t.Group.Timers;
        int id = timers.ReserveTimerId();
        try
        {
            var timer = BuildTimer(t, timers, id, clock, sigevent);
            t.Mm.WriteValue(a.A2, id);
            if (alarm)
            {
                throw ErrnoException.Of(Errno.EOPNOTSUPP); // alarm timers need an RTC the sandbox does not have
            }

            if (cpu)
            {
                object? target = cpuClock.Resolve(t, forReading: false);
                if (target is null || (target is ThreadGroup process && process != t.Group))
                {
                    throw ErrnoException.Of(Errno.EINVAL);
                }

                timer.SetCpuClock(cpuClock, target);
            }

            timers.Publish(timer);
        }
        catch
        {
            timers.ReleaseTimerId(id);
            throw;
        }

        return SyscallResult.Zero;
    }

    private static PosixTimer BuildTimer(KernelTask t, ProcessTimers timers, int id, int clock, LinuxSigevent? sigevent)
    {
        var timer = new PosixTimer(timers, id, clock);
        if (sigevent is not { } e)
        {
            // No sigevent: SIGALRM to the process, with the timer id as its value.
            timer.Notify = TimerConstants.SIGEV_SIGNAL;
            timer.Signal = Signals.SIGALRM;
            timer.Value = (uint)id;
            return timer;
        }

        switch (e.Notify)
        {
            case TimerConstants.SIGEV_SIGNAL | TimerConstants.SIGEV_THREAD_ID:
                var thread = t.Kernel.Pids.FindTask(e.ThreadId);
                if (thread is null || thread.Group != t.Group)
                {
                    throw ErrnoException.Of(Errno.EINVAL);
                }

                timer.TargetThread = thread;
                goto case TimerConstants.SIGEV_SIGNAL;
            case TimerConstants.SIGEV_SIGNAL:
            case TimerConstants.SIGEV_THREAD: // the C library's helper thread is its business: the kernel just signals the process
                if (e.Signo <= 0 || e.Signo > Signals.SIGRTMAX)
                {
                    throw ErrnoException.Of(Errno.EINVAL);
                }

                break;
            case TimerConstants.SIGEV_NONE:
                break;
            default:
                throw ErrnoException.Of(Errno.EINVAL);
        }

        timer.Notify = e.Notify;
        timer.Signal = e.Signo;
        timer.Value = e.Value;
        return timer;
    }

    [Syscall(223)]
    public static SyscallResult TimerSettime(ISyscallContext c)
    {
        var t = c.Task();
        var a = c.Arguments;
        int id = (int)a.A0;
        bool absolute = ((int)a.A1 & TimerConstants.TIMER_ABSTIME) != 0;
        if (a.A2 == 0)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        var spec = t.Mm.ReadValue<LinuxItimerspec>(a.A2);
        if (!IsValid(spec.Value) || !IsValid(spec.Interval))
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        var timers = t.Group.Timers;
        long value = ToNanoseconds(spec.Value);
        long interval = ToNanoseconds(spec.Interval);
        if (value != 0 && timers.TryGetClock(id, out int clock, out bool cpu) && !cpu)
        {
            // Wall-clock timers run on the monotonic timeline: an absolute time on their clock is
            // turned into a monotonic deadline; a relative one counts from now (as Linux does for
            // relative CLOCK_REALTIME timers).
            long now = Kernel.Kernel.Now;
            value = absolute
                ? ProcessTimers.SaturatingAdd(now, value - TimeSyscalls.ClockNow(t, clock))
                : ProcessTimers.SaturatingAdd(now, value);
            value = Math.Max(value, 1);
        }

        if (!timers.TrySetTimer(id, value, interval, absolute, out var old))
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        if (a.A3 != 0)
        {
            t.Mm.WriteValue(a.A3, ToItimerspec(old));
        }

        return SyscallResult.Zero;
    }

    [Syscall(224)]
    public static SyscallResult TimerGettime(ISyscallContext c)
    {
        var t = c.Task();
        if (!t.Group.Timers.TryGetTimer((int)c.Arguments.A0, out var setting))
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        t.Mm.WriteValue(c.Arguments.A1, ToItimerspec(setting));
        return SyscallResult.Zero;
    }

    [Syscall(225)]
    public static SyscallResult TimerGetoverrun(ISyscallContext c)
    {
        int overrun = c.Task().Group.Timers.GetOverrun((int)c.Arguments.A0);
        return overrun < 0 ? SyscallResult.Error(Errno.EINVAL) : SyscallResult.Ok(overrun);
    }

    [Syscall(226)]
    public static SyscallResult TimerDelete(ISyscallContext c) =>
        c.Task().Group.Timers.TryDeleteTimer((int)c.Arguments.A0) ? SyscallResult.Zero : SyscallResult.Error(Errno.EINVAL);

    private static bool IsValid(LinuxTimeval tv) => tv.Seconds >= 0 && (ulong)tv.Microseconds < 1_000_000;

    private static bool IsValid(LinuxTimespec ts) => ts.Seconds >= 0 && (ulong)ts.Nanoseconds < 1_000_000_000;

    /// <summary>Nanoseconds of a timeval, saturating as Linux's ktime does.</summary>
    private static long ToNanoseconds(LinuxTimeval tv) =>
        tv.Seconds >= long.MaxValue / NanosecondsPerSecond ? long.MaxValue : tv.Seconds * NanosecondsPerSecond + tv.Microseconds * 1000;

    private static long ToNanoseconds(LinuxTimespec ts) =>
        ts.Seconds >= long.MaxValue / NanosecondsPerSecond ? long.MaxValue : ts.Seconds * NanosecondsPerSecond + ts.Nanoseconds;

    /// <summary>A timeval of <paramref name="ns"/> nanoseconds (microseconds truncated, as Linux copies them out).</summary>
    internal static LinuxTimeval ToTimeval(long ns) => new() { Seconds = ns / NanosecondsPerSecond, Microseconds = ns % NanosecondsPerSecond / 1000 };

    internal static LinuxTimespec ToTimespec(long ns) => new() { Seconds = ns / NanosecondsPerSecond, Nanoseconds = ns % NanosecondsPerSecond };

    private static LinuxItimerval ToItimerval(ProcessTimers.IntervalSetting s) =>
        new() { Value = ToTimeval(s.Value), Interval = ToTimeval(s.Interval) };

    private static LinuxItimerspec ToItimerspec(ProcessTimers.TimerSetting s) =>
        new() { Value = ToTimespec(s.Value), Interval = ToTimespec(s.Interval) };
}
