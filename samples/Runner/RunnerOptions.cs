namespace AppKernel.Runner;

/// <summary>The parsed command line of <c>appkernel do</c>.</summary>
internal sealed class RunnerOptions
{
    public string Platform { get; set; } = "ptrace";

    public string RootFs { get; set; } = "/";

    public RootFsMode RootFsMode { get; set; } = RootFsMode.Overlay;

    public bool Strace { get; set; }

    /// <summary>--strace-times: --strace with each call's duration in the Sentry (strace -T).</summary>
    public bool StraceTimes { get; set; }

    public List<KeyValuePair<string, string>> Environment { get; } = new();

    public string? WorkingDirectory { get; set; }

    public string? Hostname { get; set; }

    public string? PluginDirectory { get; set; }

    public NetworkMode Network { get; set; } = NetworkMode.None;

    public List<string> AllowConnect { get; } = new();

    public List<int> AllowBind { get; } = new();

    public List<string> Command { get; } = new();

    /// <summary>--user UID[:GID]: the identity the program runs as (root when unset).</summary>
    public int? Uid { get; set; }

    /// <summary>The group of --user (its uid when only the uid was given).</summary>
    public int? Gid { get; set; }

    /// <summary>--bind HOST[:SANDBOX][:ro] and --mount: host directories (through the Gofer) and tmpfs instances shown inside.</summary>
    public List<MountSpec> Binds { get; } = new();

    public long? MemoryBytes { get; set; }

    public int? Tasks { get; set; }

    public int? OpenFiles { get; set; }

    public double? CpuSeconds { get; set; }

    public double? WallSeconds { get; set; }

    public long? OutputBytes { get; set; }

    /// <summary>The demo's commands when the runner was started without arguments.</summary>
    public string[][]? Demo { get; set; }
}
