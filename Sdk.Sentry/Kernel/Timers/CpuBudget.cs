using AppKernel.Sentry.Abi;

namespace AppKernel.Sentry.Kernel.Timers;

/// <summary>
/// <see cref="SandboxLimits.CpuSeconds"/>: the CPU time of all the sandbox's programs together.
/// Each process also starts with RLIMIT_CPU at the limit (soft, rounded up) and a second more
/// (hard), which gives a single program Linux's SIGXCPU-then-SIGKILL; this budget is the part no
/// program can raise or escape by forking: once the sandbox's total passes the limit it sends
/// SIGXCPU to every process, and a CPU-second later it kills them all.
/// </summary>
internal sealed class CpuBudget : KernelTimer
{
    private const long MinimumCheck = 1_000_000, MaximumCheck = 1_000_000_000;

    private readonly Kernel kernel;
    private readonly long soft;
    private readonly long hard;
    private CpuTimes ended;
    private bool warned;
    private bool exceeded;

    public CpuBudget(Kernel kernel, double seconds)
    {
        this.kernel = kernel;
        soft = (long)Math.Min(seconds * 1e9, long.MaxValue / 2);
        hard = soft + 1_000_000_000;
    }

    /// <summary>Taken before any process's timer lock when a thread's account closes, so the total never counts a thread twice or not at all.</summary>
    public object Gate { get; } = new();

    /// <summary>True once the budget was exhausted and the sandbox killed.</summary>
    public bool Exceeded => Volatile.Read(ref exceeded);

    /// <summary>The sandbox's CPU time so far: ended threads and live ones.</summary>
    public CpuTimes Total
    {
        get
        {
            lock (Gate)
            {
                var total = ended;
                foreach (var group in kernel.Pids.Groups())
                {
                    total += group.Timers.LiveThreadsCpuTime;
                }

                return total;
            }
        }
    }

    /// <summary>Starts watching (when the kernel is built).</summary>
    public void Start() => kernel.Timers.Schedule(this, Kernel.Now + MinimumCheck);

    /// <summary>Called under <see cref="Gate"/> with the final CPU time of a thread that ended.</summary>
    public void ThreadEnded(CpuTimes final) => ended += final;

    public override void Expire(long now)
    {
        long used = Total.Total;
        if (used >= hard)
        {
            Volatile.Write(ref exceeded, true);
            kernel.RecordLimit(SandboxLimit.Cpu);
            kernel.KillAll();
            return;
        }

        if (used >= soft && !warned)
        {
            warned = true;
            kernel.RecordLimit(SandboxLimit.Cpu);
            foreach (var group in kernel.Pids.Groups())
            {
                Syscalls.SignalSyscalls.SendToGroup(group, SignalInfo.Kernel(Signals.SIGXCPU));
            }
        }

        // Next look: when the busiest case (every task computing) could reach the next limit.
        long left = (used < soft ? soft : hard) - used;
        long wait = left / Math.Max(1, kernel.Pids.TaskCount);
        kernel.Timers.Schedule(this, now + Math.Clamp(wait, MinimumCheck, MaximumCheck));
    }
}
