namespace AppKernel;

/// <summary>What network the sandbox has.</summary>
public enum NetworkMode
{
    /// <summary>A sandbox-internal loopback stack; nothing reaches the host (the default).</summary>
    None,
    /// <summary>Host sockets made by the Sentry on the program's behalf, checked against an allow-list.</summary>
    Host,
}
