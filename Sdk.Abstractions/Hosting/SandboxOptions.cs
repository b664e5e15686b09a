namespace AppKernel;

/// <summary>Everything that shapes a sandbox. Validated when a sandbox is created, with a message naming the option.</summary>
public sealed class SandboxOptions
{
    /// <summary>The host directory the sandbox sees as <c>/</c>.</summary>
    public string RootFs { get; set; } = "/";

    /// <summary>How writes to the root are handled.</summary>
    public RootFsMode RootFsMode { get; set; } = RootFsMode.Overlay;

    /// <summary>Extra mounts, applied in order after the defaults (/proc, /dev, /tmp).</summary>
    public IList<MountSpec> Mounts { get; } = new List<MountSpec>();

    /// <summary>The platform to run programs on, by name (<c>ptrace</c>, <c>kvm</c>). Null picks the only one registered.</summary>
    public string? Platform { get; set; }

    /// <summary>The network the sandbox has.</summary>
    public NetworkMode Network { get; set; } = NetworkMode.None;

    /// <summary>
    /// With <see cref="NetworkMode.Host"/>: where programs may connect or send datagrams, as
    /// <c>CIDR</c> or <c>CIDR:PORT</c>, IPv4 or IPv6 (<c>10.0.0.0/8:443</c>, <c>::1/128</c>,
    /// <c>[2001:db8::]/32:53</c>: brackets when an IPv6 network has a port). Anything else fails
    /// with EACCES and an audit event; the loopback is the host's, and only the sandbox's own
    /// listeners there are reachable without a rule.
    /// </summary>
    public IList<string> AllowConnect { get; } = new List<string>();

    /// <summary>
    /// With <see cref="NetworkMode.Host"/>: the host ports (1-65535) programs may bind and listen
    /// on; binding another port, or listening on one not listed (an ephemeral port included),
    /// fails with EACCES. Binding port 0 for an outgoing connection is always allowed.
    /// </summary>
    public IList<int> AllowBind { get; } = new List<int>();

    /// <summary>The environment programs start with unless a <see cref="ProcessSpec"/> gives its own.</summary>
    public IDictionary<string, string> Environment { get; } = new Dictionary<string, string>(StringComparer.Ordinal)
    {
        ["PATH"] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    };

    /// <summary>The working directory inside the sandbox.</summary>
    public string WorkingDirectory { get; set; } = "/";

    /// <summary>The hostname uname(2) reports.</summary>
    public string Hostname { get; set; } = "appkernel";

    /// <summary>The kernel release uname(2) reports.</summary>
    public string KernelRelease { get; set; } = "6.1.0-appkernel";

    /// <summary>The user id programs run as.</summary>
    public int Uid { get; set; }

    /// <summary>The group id programs run as.</summary>
    public int Gid { get; set; }

    /// <summary>Resource limits.</summary>
    public SandboxLimits Limits { get; } = new();

    /// <summary>Log one line per syscall (strace style) at Information level.</summary>
    public bool Strace { get; set; }

    /// <summary>
    /// With <see cref="Strace"/>: end each line with the time the Sentry spent in the call, in seconds,
    /// as strace -T does (<c>= 0 &lt;0.000012&gt;</c>); a blocking call's time includes its wait.
    /// </summary>
    public bool StraceTimes { get; set; }

    /// <summary>
    /// Record audit events (exec, open, connect, denied calls) into <see cref="ISandbox.Events"/>.
    /// Off by default: each recorded call costs a copy of its path from the program's memory.
    /// </summary>
    public bool AuditEvents { get; set; }

    /// <summary>How many audit events <see cref="ISandbox.Events"/> holds before new ones are dropped (and counted).</summary>
    public int AuditEventCapacity { get; set; } = 1024;

    /// <summary>A fixed seed for address-space layout randomisation and AT_RANDOM; null for real randomness.</summary>
    public int? RandomSeed { get; set; }
}
