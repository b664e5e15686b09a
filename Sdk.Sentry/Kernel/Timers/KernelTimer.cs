namespace AppKernel.Sentry.Kernel.Timers;

/// <summary>
/// Something the <see cref="TimerService"/> fires at a deadline (a <see cref="Kernel.Now"/> value).
/// The owner keeps its own state under its own lock and treats <see cref="Expire"/> as a hint:
/// a call may arrive just after the owner cancelled or moved the timer, and must then do nothing.
/// </summary>
internal abstract class KernelTimer
{
    /// <summary>The deadline while scheduled; owned by the service's lock.</summary>
    internal long ScheduledDeadline;

    /// <summary>The position in the service's heap, or -1 when not scheduled; owned by the service's lock.</summary>
    internal int HeapIndex = -1;

    /// <summary>Called on the timer thread once the deadline has passed. Must not block.</summary>
    public abstract void Expire(long now);
}
