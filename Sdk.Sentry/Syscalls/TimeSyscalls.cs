using AppKernel.Sentry.Abi;
using AppKernel.Sentry.Kernel;
using AppKernel.Sentry.Kernel.Timers;
using AppKernel.Sentry.Native;
using AppKernel.Syscalls;

namespace AppKernel.Sentry.Syscalls;

/// <summary>Clocks and sleeping.</summary>
internal static unsafe class TimeSyscalls
{
    public const int CLOCK_REALTIME = 0, CLOCK_MONOTONIC = 1, CLOCK_PROCESS_CPUTIME_ID = 2, CLOCK_THREAD_CPUTIME_ID = 3,
        CLOCK_MONOTONIC_RAW = 4, CLOCK_REALTIME_COARSE = 5, CLOCK_MONOTONIC_COARSE = 6, CLOCK_BOOTTIME = 7,
        CLOCK_REALTIME_ALARM = 8, CLOCK_BOOTTIME_ALARM = 9, CLOCK_TAI = 11;

    private const int TIMER_ABSTIME = 1;

    /// <summary>The time on <paramref name="clock"/> in nanoseconds; EINVAL for clocks Linux does not have.</summary>
    public static long ClockNow(KernelTask t, int clock)
    {
        if (CpuClockId.TryDecode(clock, out var cpuClock))
        {
            // CPU clocks: the program's time on the platform plus the Sentry's work for it.
            return cpuClock.Sample(cpuClock.Resolve(t, forReading: true) ?? throw ErrnoException.Of(Errno.EINVAL));
        }

        long* ts = stackalloc long[2];
        int hostClock = clock switch
        {
            CLOCK_REALTIME or CLOCK_REALTIME_COARSE or CLOCK_REALTIME_ALARM => CLOCK_REALTIME,
            CLOCK_TAI => CLOCK_TAI,
            CLOCK_MONOTONIC or CLOCK_MONOTONIC_RAW or CLOCK_MONOTONIC_COARSE => CLOCK_MONOTONIC,
            CLOCK_BOOTTIME or CLOCK_BOOTTIME_ALARM => CLOCK_BOOTTIME,
            _ => throw ErrnoException.Of(Errno.EINVAL),
        };
        LibC.ClockGettime(hostClock, ts);
        return ts[0] * 1_000_000_000 + ts[1];
    }

    private static LinuxTimespec ToTimespec(long ns) => new() { Seconds = ns / 1_000_000_000, Nanoseconds = ns % 1_000_000_000 };

    private static long ReadDuration(KernelTask t, ulong address)
    {
        var ts = t.Mm.ReadValue<LinuxTimespec>(address);
        if (ts.Seconds < 0 || (ulong)ts.Nanoseconds >= 1_000_000_000)
        {
            throw ErrnoException.Of(Errno.EINVAL);
        }

        return ts.Seconds > long.MaxValue / 1_000_000_000 - 1 ? long.MaxValue / 2 : ts.Seconds * 1_000_000_000 + ts.Nanoseconds;
    }

    [Syscall(228)]
    public static SyscallResult ClockGettime(ISyscallContext c)
    {
        var t = c.Task();
        long now = ClockNow(t, (int)c.Arguments.A0);
        t.Mm.WriteValue(c.Arguments.A1, ToTimespec(now));
        return SyscallResult.Zero;
    }

    [Syscall(229)]
    public static SyscallResult ClockGetres(ISyscallContext c)
    {
        var t = c.Task();
        int clock = (int)c.Arguments.A0;
        bool cpu = CpuClockId.TryDecode(clock, out var cpuClock);
        if (cpu)
        {
            _ = cpuClock.Resolve(t, forReading: false) ?? throw ErrnoException.Of(Errno.EINVAL);
        }
        else
        {
            ClockNow(t, clock);
        }

        if (c.Arguments.A1 != 0)
        {
            // Linux: coarse clocks and the tick-counted CPU clocks (PROF, VIRT) report a tick; the rest 1 ns.
            long resolution = clock is CLOCK_REALTIME_COARSE or CLOCK_MONOTONIC_COARSE || (cpu && cpuClock.Type != CpuClockId.Sched)
                ? TimerConstants.TickNanoseconds
                : 1;
            t.Mm.WriteValue(c.Arguments.A1, ToTimespec(resolution));
        }

        return SyscallResult.Zero;
    }

    [Syscall(96)]
    public static SyscallResult Gettimeofday(ISyscallContext c)
    {
        var t = c.Task();
        if (c.Arguments.A0 != 0)
        {
            long now = ClockNow(t, CLOCK_REALTIME);
            t.Mm.WriteValue(c.Arguments.A0, new LinuxTimeval { Seconds = now / 1_000_000_000, Microseconds = now % 1_000_000_000 / 1000 });
        }

        if (c.Arguments.A1 != 0)
        {
            t.Mm.WriteValue(c.Arguments.A1, 0L); // struct timezone: UTC, no DST
        }

        return SyscallResult.Zero;
    }

    [Syscall(201)]
    public static SyscallResult Time(ISyscallContext c)
    {
        var t = c.Task();
        long seconds = ClockNow(t, CLOCK_REALTIME) / 1_000_000_000;
        if (c.Arguments.A0 != 0)
        {
            t.Mm.WriteValue(c.Arguments.A0, seconds);
        }

        return SyscallResult.Ok(seconds);
    }

    [Syscall(35)]
    public static SyscallResult Nanosleep(ISyscallContext c)
    {
        var t = c.Task();
        long duration = ReadDuration(t, c.Arguments.A0);
        return SleepUntil(t, Kernel.Kernel.Now + duration, c.Arguments.A1);
    }

    [Syscall(230)]
    public static SyscallResult ClockNanosleep(ISyscallContext c)
    {
        var t = c.Task();
        var a = c.Arguments;
        int clock = (int)a.A0;
        int flags = (int)a.A1;
        bool absolute = (flags & TIMER_ABSTIME) != 0;
        CpuClockId cpuClock = default;
        bool cpu = clock != CLOCK_THREAD_CPUTIME_ID && CpuClockId.TryDecode(clock, out cpuClock);
        if (!cpu && clock is not (CLOCK_REALTIME or CLOCK_MONOTONIC or CLOCK_BOOTTIME or CLOCK_TAI))
        {
            // Clocks without sleeping (the thread CPU clock, raw and coarse clocks, a clock fd,
            // alarm clocks without an RTC) give EOPNOTSUPP; unknown ones EINVAL.
            return SyscallResult.Error(clock is CLOCK_THREAD_CPUTIME_ID or CLOCK_MONOTONIC_RAW or CLOCK_REALTIME_COARSE or CLOCK_MONOTONIC_COARSE
                or CLOCK_REALTIME_ALARM or CLOCK_BOOTTIME_ALARM or < 0 ? Errno.EOPNOTSUPP : Errno.EINVAL);
        }

        long value = ReadDuration(t, a.A2);
        if (cpu)
        {
            return CpuSleep(t, cpuClock, value, absolute, absolute ? 0 : a.A3);
        }

        long deadline = absolute
            ? Kernel.Kernel.Now + (value - ClockNow(t, clock))
            : Kernel.Kernel.Now + value;
        return SleepUntil(t, deadline, absolute ? 0 : a.A3);
    }

    /// <summary>
    /// Sleeps until a CPU clock reaches a deadline (Linux's posix_cpu_nsleep): a thread may not
    /// sleep on its own thread clock (EINVAL); an absolute sleep interrupted by a handler is not
    /// restarted with the time left but from the start (ERESTARTNOHAND).
    /// </summary>
    private static SyscallResult CpuSleep(KernelTask t, CpuClockId clock, long value, bool absolute, ulong remaining)
    {
        if (clock.PerThread && (clock.Pid == 0 || clock.Pid == t.Tid))
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        var target = clock.Resolve(t, forReading: false) ?? throw ErrnoException.Of(Errno.EINVAL);
        long deadline = absolute ? value : ProcessTimers.SaturatingAdd(clock.Sample(target), value);
        return CpuSleepUntil(t, new ProcessTimers.CpuSleeper(t, clock, target, deadline), absolute, remaining);
    }

    private static SyscallResult CpuSleepUntil(KernelTask t, ProcessTimers.CpuSleeper sleeper, bool absolute, ulong remaining)
    {
        if (sleeper.Reached)
        {
            return SyscallResult.Zero;
        }

        var timers = sleeper.Target is KernelTask task ? task.Group.Timers : ((ThreadGroup)sleeper.Target).Timers;
        timers.AddSleeper(sleeper);
        try
        {
            t.WaitUntil(null, 0, () => sleeper.Reached);
            return SyscallResult.Zero;
        }
        catch (ErrnoException e) when (e.Errno == Errno.ERESTARTSYS)
        {
            if (absolute)
            {
                return SyscallResult.Error(Errno.ERESTARTNOHAND);
            }

            if (remaining != 0)
            {
                t.Mm.WriteValue(remaining, ToTimespec(Math.Max(0, sleeper.Deadline - sleeper.Clock.Sample(sleeper.Target))));
            }

            t.RestartBlock = task => CpuSleepUntil(task, sleeper, absolute, remaining);
            return SyscallResult.Error(Errno.ERESTART_RESTARTBLOCK);
        }
        finally
        {
            timers.RemoveSleeper(sleeper);
        }
    }

    /// <summary>Sleeps interruptibly; a signal returns EINTR with the time left, or restarts for the time left.</summary>
    private static SyscallResult SleepUntil(KernelTask t, long deadline, ulong remaining)
    {
        try
        {
            t.WaitUntil(null, 0, static () => false, deadline);
            return SyscallResult.Zero;
        }
        catch (ErrnoException e) when (e.Errno == Errno.ERESTARTSYS)
        {
            long left = Math.Max(0, deadline - Kernel.Kernel.Now);
            if (remaining != 0)
            {
                t.Mm.WriteValue(remaining, ToTimespec(left));
            }

            t.RestartBlock = task => SleepUntil(task, deadline, remaining);
            return SyscallResult.Error(Errno.ERESTART_RESTARTBLOCK);
        }
    }

    [Syscall(219)]
    public static SyscallResult RestartSyscall(ISyscallContext c)
    {
        var t = c.Task();
        var restart = t.RestartBlock;
        t.RestartBlock = null;
        return restart is null ? SyscallResult.Error(Errno.EINTR) : restart(t);
    }
}
