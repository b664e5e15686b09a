namespace AppKernel.Sentry.Kernel.Timers;

/// <summary>
/// A CPU-time clock id as Linux encodes it: CLOCK_PROCESS_CPUTIME_ID (2), CLOCK_THREAD_CPUTIME_ID (3),
/// or a negative id from clock_getcpuclockid / pthread_getcpuclockid: <c>~pid &lt;&lt; 3</c>, a
/// per-thread bit (4) and the clock type in the low two bits (PROF 0, VIRT 1, SCHED 2; 3 means
/// a dynamic clock fd, which the Sentry has none of).
/// </summary>
internal readonly record struct CpuClockId(int Pid, bool PerThread, int Type)
{
    public const int Prof = 0, Virt = 1, Sched = 2;

    /// <summary>Decodes <paramref name="clock"/>; false for ids that are not CPU clocks.</summary>
    public static bool TryDecode(int clock, out CpuClockId id)
    {
        switch (clock)
        {
            case 2: // CLOCK_PROCESS_CPUTIME_ID
                id = new CpuClockId(0, false, Sched);
                return true;
            case 3: // CLOCK_THREAD_CPUTIME_ID
                id = new CpuClockId(0, true, Sched);
                return true;
            case < 0 when (clock & 7) != 3: // (clock & 7) == 3 is a dynamic clock fd
                id = new CpuClockId(~(clock >> 3), (clock & 4) != 0, clock & 3);
                return true;
            default:
                id = default;
                return false;
        }
    }

    /// <summary>The clock's reading from a CPU account: VIRT counts user time, PROF and SCHED user plus system.</summary>
    public long Read(CpuTimes times) => Type == Virt ? times.User : times.Total;

    /// <summary>
    /// The thread or process the clock measures, as Linux's pid_for_clock finds it: pid 0 is the
    /// caller (its thread or its process); a thread clock must name a thread of the caller's
    /// process; a process clock must name a process (or, for reading, the caller's own thread id).
    /// Null when there is none (EINVAL).
    /// </summary>
    public object? Resolve(KernelTask caller, bool forReading)
    {
        if (Type > Sched)
        {
            return null;
        }

        if (Pid == 0)
        {
            return PerThread ? caller : caller.Group;
        }

        if (PerThread)
        {
            var task = caller.Kernel.Pids.FindTask(Pid);
            return task is not null && task.Group == caller.Group ? task : null;
        }

        if (forReading && Pid == caller.Tid)
        {
            return caller.Group;
        }

        return caller.Kernel.Pids.FindGroup(Pid);
    }

    /// <summary>The current reading of the clock's target (a <see cref="KernelTask"/> or <see cref="ThreadGroup"/>).</summary>
    public long Sample(object target) =>
        Read(target is KernelTask task ? task.CpuTime : ((ThreadGroup)target).Timers.CpuTime);
}
