namespace AppKernel;

/// <summary>One isolated kernel instance: its own PID namespace, filesystems, network and limits.</summary>
public interface ISandbox : IAsyncDisposable
{
    /// <summary>A unique id for logs and audit events.</summary>
    string Id { get; }

    /// <summary>The options the sandbox was made with (validated).</summary>
    SandboxOptions Options { get; }

    /// <summary>Starts a program; fails with <see cref="SandboxStartException"/> (ENOENT, ENOEXEC, EACCES) if it cannot be executed.</summary>
    Task<ISandboxProcess> StartAsync(ProcessSpec spec, CancellationToken cancellationToken = default);

    /// <summary>Kills every program in the sandbox.</summary>
    void KillAll();
}
