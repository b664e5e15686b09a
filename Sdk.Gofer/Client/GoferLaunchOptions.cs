namespace AppKernel.Gofer;

/// <summary>One host directory the Gofer serves.</summary>
/// <param name="HostPath">The host directory (resolved once, when the Gofer starts).</param>
/// <param name="ReadOnly">True to refuse every mutation with EROFS.</param>
public sealed record GoferRoot(string HostPath, bool ReadOnly);

/// <summary>How <see cref="GoferLauncher"/> starts a Gofer.</summary>
public sealed class GoferLaunchOptions
{
    /// <summary>
    /// The <c>dotnet</c> host that runs the Gofer, or null to use the one the current runtime
    /// belongs to (then <c>DOTNET_HOST_PATH</c>, then <c>DOTNET_ROOT</c>).
    /// </summary>
    public string? DotnetHostPath { get; set; }

    /// <summary>How long to wait for the Gofer's version handshake before giving up.</summary>
    public TimeSpan StartupTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// How long one request may wait for its answer; past it the request fails with EIO and its
    /// connection is dropped. <see cref="Timeout.InfiniteTimeSpan"/> waits forever.
    /// </summary>
    public TimeSpan RequestTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>The most connections (so requests in flight at once) the client opens.</summary>
    public int MaxConnections { get; set; } = 16;

    /// <summary>
    /// Live nodes (each an O_PATH descriptor in the Gofer) past which the client asks the
    /// garbage collector, at most once per this many new nodes, to find the inodes nobody
    /// references any more so that their nodes are released. 0 disables it.
    /// </summary>
    public int NodeSoftLimit { get; set; } = 65536;

    /// <summary>The Gofer assembly to run instead of this one (tests: a copy without its runtimeconfig).</summary>
    internal string? GoferAssemblyPath { get; set; }
}
