namespace AppKernel.Sentry.Kernel.Timers;

/// <summary>
/// CPU time in nanoseconds, split as Linux splits it: user time is the program's own computing on
/// the platform, system time is the Sentry's work for it (its syscalls, faults and signal delivery
/// on the task's host thread).
/// </summary>
internal readonly record struct CpuTimes(long User, long System)
{
    /// <summary>User plus system: the PROF and SCHED clocks (CLOCK_*_CPUTIME_ID, ITIMER_PROF, RLIMIT_CPU).</summary>
    public long Total => User + System;

    public static CpuTimes operator +(CpuTimes a, CpuTimes b) => new(a.User + b.User, a.System + b.System);
}
