namespace AppKernel.Sentry.Kernel;

/// <summary>
/// A thread's scheduling policy, real-time priority and nice value as sched(7) reports them. The
/// platform's host threads are what actually get scheduled; these values are kept, checked and
/// inherited exactly as Linux does so that programs that read them back see what they set.
/// </summary>
internal readonly record struct SchedulingAttributes(int Policy, int Priority, int Nice, bool ResetOnFork)
{
    /// <summary>ioprio_set's value (class &lt;&lt; 13 | level); 0 means none set (then derived from nice).</summary>
    public int IoPriority { get; init; }

    public const int SCHED_OTHER = 0, SCHED_FIFO = 1, SCHED_RR = 2, SCHED_BATCH = 3, SCHED_IDLE = 5, SCHED_DEADLINE = 6;

    public static SchedulingAttributes Default => new(SCHED_OTHER, 0, 0, false);

    public bool IsRealTime => Policy is SCHED_FIFO or SCHED_RR;

    /// <summary>What a child of clone/fork gets: with reset-on-fork, real-time and negative nice fall back to the defaults.</summary>
    public SchedulingAttributes ForChild() => ResetOnFork
        ? new SchedulingAttributes(IsRealTime ? SCHED_OTHER : Policy, IsRealTime ? 0 : Priority, Math.Max(Nice, 0), false) { IoPriority = IoPriority }
        : this;
}
