using AppKernel.Sentry.Abi;

namespace AppKernel.Sentry.Kernel.Timers;

/// <summary>Where a POSIX timer stands (Linux's posix_timer_state).</summary>
internal enum PosixTimerStatus
{
    /// <summary>Not running: never set, set to zero, a one-shot that fired, or a SIGEV_NONE timer.</summary>
    Disarmed,

    /// <summary>Running toward its expiry.</summary>
    Armed,

    /// <summary>A periodic timer that fired: it waits for its signal's delivery to start the next period.</summary>
    RequeuePending,
}

/// <summary>
/// One timer of timer_create(2). Its state belongs to its process's <see cref="ProcessTimers"/>
/// and is guarded by that object's lock. Wall-clock timers (REALTIME, MONOTONIC, BOOTTIME, TAI)
/// keep their expiry on the monotonic timeline (<see cref="Kernel.Now"/>), which is also how Linux
/// runs relative CLOCK_REALTIME timers; CPU-clock timers keep it in nanoseconds of their clock.
/// </summary>
internal sealed class PosixTimer : KernelTimer
{
    private static long nextUniqueId;

    public PosixTimer(ProcessTimers owner, int id, int clockId)
    {
        Owner = owner;
        Id = id;
        ClockId = clockId;
    }

    public ProcessTimers Owner { get; }

    /// <summary>The timer id the process knows it by (si_timerid).</summary>
    public int Id { get; }

    /// <summary>Never reused in the kernel: a queued signal carries it, so a deleted and recreated id is told apart.</summary>
    public long UniqueId { get; } = Interlocked.Increment(ref nextUniqueId);

    public int ClockId { get; }

    /// <summary>Set for CPU-clock timers: the clock, and the <see cref="KernelTask"/> or <see cref="ThreadGroup"/> it measures.</summary>
    public CpuClockId? CpuClock { get; private set; }

    public object? CpuTarget { get; private set; }

    /// <summary>Makes this a CPU-clock timer (before it is published).</summary>
    public void SetCpuClock(CpuClockId clock, object target)
    {
        CpuClock = clock;
        CpuTarget = target;
    }

    public bool IsCpuTimer => CpuClock is not null;

    // The sigevent.
    public int Notify;
    public int Signal;
    public ulong Value;

    /// <summary>SIGEV_THREAD_ID's thread; null for process-directed signals.</summary>
    public KernelTask? TargetThread;

    public bool SigevNone => Notify == TimerConstants.SIGEV_NONE;

    // State, under the owner's lock.
    /// <summary>The expiry (see the class remarks); 0 when not set.</summary>
    public long Expires;

    public long Interval;
    public PosixTimerStatus Status;

    /// <summary>Expirations counted since the signal was queued (-1 after a delivery: the first expiry is not an overrun).</summary>
    public long Overrun = -1;

    /// <summary>The overrun of the last delivered signal (timer_getoverrun).</summary>
    public long OverrunLast;

    /// <summary>Bumped by timer_settime, timer_delete and each periodic delivery: a queued signal of an older generation is dropped.</summary>
    public int SignalSeq;

    /// <summary><see cref="SignalSeq"/> when the signal was last sent.</summary>
    public int SigqueueSeq;

    /// <summary>The timer's signal is in a signal queue.</summary>
    public bool Queued;

    /// <summary>The signal was ignored when a periodic timer fired: the timer waits until the signal is no longer ignored.</summary>
    public bool Parked;

    /// <summary>Whether the last signal sent was a periodic timer's.</summary>
    public bool SignalPeriodic;

    /// <summary>False once deleted.</summary>
    public bool Valid = true;

    public override void Expire(long now) => Owner.PosixTimerExpired(this, now);
}
