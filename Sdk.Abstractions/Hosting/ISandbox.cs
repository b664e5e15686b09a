using System.Threading.Channels;

namespace AppKernel;

/// <summary>
/// One isolated kernel instance: its own PID namespace, filesystems, network and limits.
/// Disposing it kills every program in it, reaps them, stops its Gofer and frees its memory;
/// no host process it started is left behind.
/// </summary>
public interface ISandbox : IAsyncDisposable
{
    /// <summary>A unique id for logs and audit events.</summary>
    string Id { get; }

    /// <summary>The options the sandbox was made with (validated).</summary>
    SandboxOptions Options { get; }

    /// <summary>Starts a program; fails with <see cref="SandboxStartException"/> (ENOENT, ENOEXEC, EACCES) if it cannot be executed.</summary>
    /// <param name="spec">The program, its arguments, environment and stdio.</param>
    /// <param name="cancellationToken">Stops waiting for the program to be loaded; a program that was created is killed.</param>
    Task<ISandboxProcess> StartAsync(ProcessSpec spec, CancellationToken cancellationToken = default);

    /// <summary>Kills every program in the sandbox.</summary>
    void KillAll();

    /// <summary>Completes when no program is left in the sandbox (every process exited and was reaped).</summary>
    /// <param name="cancellationToken">Stops waiting (the programs keep running).</param>
    Task WaitForAllExitedAsync(CancellationToken cancellationToken = default);

    /// <summary>
    /// The sandbox's whole use so far: the CPU time of every program (ended or running), the
    /// largest resident memory any process reached, and the first limit hit.
    /// </summary>
    ResourceUsage ResourceUsage { get; }

    /// <summary>The first limit the sandbox hit, or <see cref="SandboxLimit.None"/>.</summary>
    SandboxLimit LimitHit { get; }

    /// <summary>
    /// Audit events (exec, open, connect, denied calls), when <see cref="SandboxOptions.AuditEvents"/>
    /// is on. The channel is bounded (<see cref="SandboxOptions.AuditEventCapacity"/>): when the host
    /// reads too slowly, new events are dropped and counted in <see cref="DroppedEvents"/>, so a
    /// program is never slowed down by its reader. It completes when the sandbox is disposed.
    /// </summary>
    ChannelReader<SandboxEvent> Events { get; }

    /// <summary>How many audit events were dropped because <see cref="Events"/> was full.</summary>
    long DroppedEvents { get; }
}
