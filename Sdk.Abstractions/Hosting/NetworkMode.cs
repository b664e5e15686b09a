namespace AppKernel;

/// <summary>What network the sandbox has.</summary>
public enum NetworkMode
{
    /// <summary>A sandbox-internal loopback stack; nothing reaches the host (the default).</summary>
    None,
    /// <summary>
    /// TCP and UDP over host sockets the Sentry makes on the program's behalf, checked against
    /// <see cref="SandboxOptions.AllowConnect"/> and <see cref="SandboxOptions.AllowBind"/>.
    /// Unix sockets stay the sandbox's own.
    /// </summary>
    Host,
}
