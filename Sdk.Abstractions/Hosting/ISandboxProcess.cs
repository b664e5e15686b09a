namespace AppKernel;

/// <summary>
/// A program started in a sandbox, as its host sees it. Disposing it kills the program (SIGKILL),
/// waits until it is reaped and closes the host's ends of its stdio pipes.
/// </summary>
public interface ISandboxProcess : IAsyncDisposable
{
    /// <summary>The process id inside the sandbox.</summary>
    int Pid { get; }

    /// <summary>
    /// Writes to the program's stdin (null when stdio is inherited). A pipe: writes block
    /// (or await) while the program does not read; dispose it to give the program end-of-file.
    /// </summary>
    Stream? StandardInput { get; }

    /// <summary>
    /// Reads the program's stdout (null when stdio is inherited). A pipe: a program that writes
    /// faster than the host reads blocks in write(2) (back-pressure), as with any pipe.
    /// </summary>
    Stream? StandardOutput { get; }

    /// <summary>Reads the program's stderr (null when stdio is inherited); a pipe, like <see cref="StandardOutput"/>.</summary>
    Stream? StandardError { get; }

    /// <summary>Completes when the process has exited and been reaped.</summary>
    /// <param name="cancellationToken">Stops waiting (the program keeps running; dispose or <see cref="Kill"/> to end it).</param>
    /// <exception cref="OperationCanceledException">The token was cancelled first.</exception>
    /// <exception cref="SandboxFailedException">The Sentry failed internally and brought the sandbox down.</exception>
    Task<ExitStatus> WaitForExitAsync(CancellationToken cancellationToken = default);

    /// <summary>Whether the process has exited.</summary>
    bool HasExited { get; }

    /// <summary>
    /// What the process used: its CPU time and its reaped children's, its peak resident memory,
    /// and the first sandbox limit hit. Final once <see cref="WaitForExitAsync"/> has completed;
    /// a running process reports its use so far.
    /// </summary>
    ResourceUsage ResourceUsage { get; }

    /// <summary>Sends SIGKILL to the process.</summary>
    void Kill();

    /// <summary>
    /// Sends signal <paramref name="signal"/> (1-64) to the process, as a sender outside the sandbox:
    /// it is handled, ignored or takes its default action as for any process (init included, so a
    /// runner's Ctrl-C reaches the program).
    /// </summary>
    void Signal(int signal);
}
