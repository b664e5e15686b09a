namespace AppKernel;

/// <summary>A program started in a sandbox, as its host sees it.</summary>
public interface ISandboxProcess : IAsyncDisposable
{
    /// <summary>The process id inside the sandbox.</summary>
    int Pid { get; }

    /// <summary>Writes to the program's stdin (null when stdio is inherited).</summary>
    Stream? StandardInput { get; }

    /// <summary>Reads the program's stdout (null when stdio is inherited).</summary>
    Stream? StandardOutput { get; }

    /// <summary>Reads the program's stderr (null when stdio is inherited).</summary>
    Stream? StandardError { get; }

    /// <summary>Completes when the process has exited and been reaped.</summary>
    Task<ExitStatus> WaitForExitAsync(CancellationToken cancellationToken = default);

    /// <summary>Sends SIGKILL to the process.</summary>
    void Kill();

    /// <summary>
    /// Sends signal <paramref name="signal"/> (1-64) to the process, as a sender outside the sandbox:
    /// it is handled, ignored or takes its default action as for any process (init included, so a
    /// runner's Ctrl-C reaches the program).
    /// </summary>
    void Signal(int signal);
}
