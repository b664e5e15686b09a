namespace AppKernel;

/// <summary>A sandbox limit (<see cref="SandboxLimits"/>) that stopped or held back a program.</summary>
public enum SandboxLimit
{
    /// <summary>No limit was hit.</summary>
    None,

    /// <summary><see cref="SandboxLimits.WallSeconds"/>: the sandbox was killed at its wall-clock deadline.</summary>
    Wall,

    /// <summary><see cref="SandboxLimits.CpuSeconds"/>: the programs' CPU time reached the limit (SIGXCPU, then SIGKILL).</summary>
    Cpu,

    /// <summary><see cref="SandboxLimits.MemoryBytes"/>: an allocation failed with ENOMEM at the limit, or the sandbox's OOM killer ended a process.</summary>
    Memory,

    /// <summary><see cref="SandboxLimits.OutputBytes"/>: a write to stdout or stderr failed with EFBIG.</summary>
    Output,

    /// <summary><see cref="SandboxLimits.Tasks"/>: fork, clone or a thread start failed with EAGAIN.</summary>
    Tasks,
}

/// <summary>What a program (or a whole sandbox) used, as <c>getrusage</c> would report it, and the limit it hit.</summary>
/// <param name="UserCpuTime">CPU time in user mode, the process's own and its reaped children's.</param>
/// <param name="SystemCpuTime">CPU time the Sentry spent on the program's syscalls and faults, own and children's.</param>
/// <param name="PeakMemoryBytes">The largest resident memory of the process or any child it reaped (ru_maxrss, in bytes).</param>
/// <param name="LimitHit">The first sandbox limit that was hit, or <see cref="SandboxLimit.None"/>.</param>
public readonly record struct ResourceUsage(TimeSpan UserCpuTime, TimeSpan SystemCpuTime, long PeakMemoryBytes, SandboxLimit LimitHit)
{
    /// <summary>User plus system CPU time.</summary>
    public TimeSpan CpuTime => UserCpuTime + SystemCpuTime;

    /// <inheritdoc/>
    public override string ToString() =>
        $"cpu {CpuTime.TotalMilliseconds:F0} ms (user {UserCpuTime.TotalMilliseconds:F0}, sys {SystemCpuTime.TotalMilliseconds:F0}), peak memory {PeakMemoryBytes / 1024} KiB" +
        (LimitHit == SandboxLimit.None ? "" : $", {LimitHit.ToString().ToLowerInvariant()} limit hit");
}
