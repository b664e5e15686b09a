namespace AppKernel;

/// <summary>
/// Resource limits the Sentry enforces, surfacing as the errors Linux gives (ENOMEM, EAGAIN,
/// EMFILE, SIGXCPU/SIGKILL). A null limit means none.
/// </summary>
public sealed class SandboxLimits
{
    /// <summary>Program memory the sandbox may hold, in bytes.</summary>
    public long? MemoryBytes { get; set; }

    /// <summary>Threads and processes alive at once.</summary>
    public int? Tasks { get; set; }

    /// <summary>Open file descriptors per process (RLIMIT_NOFILE).</summary>
    public int? OpenFiles { get; set; }

    /// <summary>CPU time of all programs together, in seconds; past it they get SIGXCPU, then SIGKILL.</summary>
    public double? CpuSeconds { get; set; }

    /// <summary>Wall-clock time from start, in seconds; past it the sandbox is killed.</summary>
    public double? WallSeconds { get; set; }

    /// <summary>Bytes the programs may write to stdout and stderr together; past it writes fail with EFBIG and SIGXFSZ.</summary>
    public long? OutputBytes { get; set; }
}
