namespace AppKernel;

/// <summary>An extra mount inside the sandbox.</summary>
public sealed class MountSpec
{
    /// <summary>Where it appears inside the sandbox (absolute).</summary>
    public required string Target { get; set; }

    /// <summary>The filesystem type name: <c>tmpfs</c>, <c>bind</c> (a host directory through the Gofer), or a plugin's type.</summary>
    public required string Type { get; set; }

    /// <summary>The source: a host directory for <c>bind</c>, otherwise filesystem-specific.</summary>
    public string Source { get; set; } = "none";

    /// <summary>Mount read-only.</summary>
    public bool ReadOnly { get; set; }

    /// <summary>Filesystem-specific options (mount(2)'s data string, e.g. <c>size=64m</c>).</summary>
    public string? Data { get; set; }
}
