namespace AppKernel.Sentry.Kernel.Timers;

// clock_nanosleep on a CPU clock: the sleeper waits until the clock reaches its deadline; the CPU
// watch wakes it. (A process's only thread sleeping on its own process clock sleeps until a signal,
// as on Linux: nothing else makes the clock move.)
internal sealed partial class ProcessTimers
{
    private readonly List<CpuSleeper> sleepers = new();

    /// <summary>A task sleeping until a CPU clock of this process (or of one of its threads) reaches a deadline.</summary>
    public sealed class CpuSleeper(KernelTask task, CpuClockId clock, object target, long deadline)
    {
        public KernelTask Task { get; } = task;

        public CpuClockId Clock { get; } = clock;

        /// <summary>The <see cref="KernelTask"/> or <see cref="ThreadGroup"/> the clock measures.</summary>
        public object Target { get; } = target;

        public long Deadline { get; } = deadline;

        /// <summary>True once the clock has reached the deadline.</summary>
        public bool Reached => Clock.Sample(Target) >= Deadline;
    }

    /// <summary>Watches <paramref name="sleeper"/>'s clock until <see cref="RemoveSleeper"/>.</summary>
    public void AddSleeper(CpuSleeper sleeper)
    {
        lock (gate)
        {
            sleepers.Add(sleeper);
        }

        UpdateCpuWatch();
    }

    public void RemoveSleeper(CpuSleeper sleeper)
    {
        lock (gate)
        {
            sleepers.Remove(sleeper);
        }
    }

    private void WakeSleepersLocked(CpuTimes sample)
    {
        foreach (var sleeper in sleepers)
        {
            if (SleeperClockLocked(sleeper, sample) >= sleeper.Deadline)
            {
                sleeper.Task.Wake();
            }
        }
    }

    private void ConsiderSleepersLocked(CpuTimes sample, int parallel, ref long wait)
    {
        foreach (var sleeper in sleepers)
        {
            long left = Math.Max(0, sleeper.Deadline - SleeperClockLocked(sleeper, sample));
            wait = Math.Min(wait, sleeper.Target is KernelTask ? left : left / parallel);
        }
    }

    private static long SleeperClockLocked(CpuSleeper sleeper, CpuTimes sample) =>
        sleeper.Target is KernelTask task ? sleeper.Clock.Read(task.CpuTime) : sleeper.Clock.Read(sample);
}
