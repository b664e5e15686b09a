namespace AppKernel;

/// <summary>How a program's standard streams are connected.</summary>
public enum StdioMode
{
    /// <summary>Pipes the host reads and writes through <see cref="ISandboxProcess"/>'s streams.</summary>
    Pipe,
    /// <summary>The host process's own stdin, stdout and stderr (what a command-line runner wants).</summary>
    Inherit,
}

/// <summary>A program to start inside a sandbox.</summary>
public sealed class ProcessSpec
{
    /// <summary>Creates a spec for <paramref name="path"/> with <paramref name="arguments"/>; argv[0] is the path.</summary>
    public ProcessSpec(string path, params string[] arguments)
    {
        Path = path;
        Arguments = [path, .. arguments];
    }

    /// <summary>The program: an absolute path, or a name looked up in the sandbox's PATH.</summary>
    public string Path { get; }

    /// <summary>The full argv, argv[0] included.</summary>
    public IList<string> Arguments { get; }

    /// <summary>The environment; null takes <see cref="SandboxOptions.Environment"/>.</summary>
    public IDictionary<string, string>? Environment { get; set; }

    /// <summary>The working directory; null takes <see cref="SandboxOptions.WorkingDirectory"/>.</summary>
    public string? WorkingDirectory { get; set; }

    /// <summary>How stdin, stdout and stderr are connected.</summary>
    public StdioMode Stdio { get; set; } = StdioMode.Pipe;
}
