namespace AppKernel;

/// <summary>How a sandboxed program ended: an exit code, or the signal that killed it.</summary>
/// <param name="ExitCode">The exit code (0-255) when the program exited.</param>
/// <param name="Signal">The signal number when a signal killed it.</param>
/// <param name="CoreDumped">Whether the signal's default action was "core" (no core file is written).</param>
public readonly record struct ExitStatus(int? ExitCode, int? Signal, bool CoreDumped = false)
{
    /// <summary>An exit with <paramref name="code"/>.</summary>
    public static ExitStatus Exited(int code) => new(code & 0xFF, null);

    /// <summary>Death by <paramref name="signal"/>.</summary>
    public static ExitStatus Killed(int signal, bool coreDumped = false) => new(null, signal, coreDumped);

    /// <summary>The status a shell would report: the exit code, or 128 + the signal number.</summary>
    public int ShellStatus => ExitCode ?? 128 + (Signal ?? 0);

    /// <inheritdoc/>
    public override string ToString() => ExitCode is { } code ? $"exited with {code}" : $"killed by signal {Signal}{(CoreDumped ? " (core dumped)" : "")}";
}
