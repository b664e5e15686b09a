namespace AppKernel;

/// <summary>How the sandbox sees its root filesystem.</summary>
public enum RootFsMode
{
    /// <summary>The root is read-only underneath a tmpfs: writes stay in memory and vanish with the sandbox (the default, as with <c>runsc do</c>).</summary>
    Overlay,
    /// <summary>The root is read-only; writes fail with EROFS.</summary>
    ReadOnly,
    /// <summary>Writes reach the host directory, through the Gofer only.</summary>
    ReadWrite,
}
