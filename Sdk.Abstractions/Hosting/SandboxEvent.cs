namespace AppKernel;

/// <summary>What a <see cref="SandboxEvent"/> records.</summary>
public enum SandboxEventKind
{
    /// <summary>execve or execveat: <see cref="SandboxEvent.Path"/> and <see cref="SandboxEvent.Arguments"/>.</summary>
    Exec,

    /// <summary>open, openat, openat2 or creat: <see cref="SandboxEvent.Path"/> and <see cref="SandboxEvent.Flags"/>.</summary>
    Open,

    /// <summary>connect: <see cref="SandboxEvent.Address"/> (<c>ip:port</c>, <c>[ip6]:port</c> or a Unix socket path).</summary>
    Connect,

    /// <summary>Any other syscall that failed with EACCES or EPERM (refused by the Sentry or an interceptor).</summary>
    Denied,
}

/// <summary>
/// One audit event of a sandbox (<see cref="ISandbox.Events"/>), recorded when the syscall returns.
/// Exec, open and connect calls are recorded whether they succeed or fail; <see cref="Errno"/> says which.
/// </summary>
public sealed record SandboxEvent
{
    /// <summary>What happened.</summary>
    public required SandboxEventKind Kind { get; init; }

    /// <summary>When the call returned (UTC).</summary>
    public required DateTimeOffset Timestamp { get; init; }

    /// <summary>The process id in the sandbox.</summary>
    public required int Pid { get; init; }

    /// <summary>The thread id in the sandbox.</summary>
    public required int Tid { get; init; }

    /// <summary>The calling thread's name (comm).</summary>
    public required string Command { get; init; }

    /// <summary>The syscall number (x86-64).</summary>
    public required int Syscall { get; init; }

    /// <summary>The syscall's name (<c>openat</c>, <c>execve</c>...).</summary>
    public required string SyscallName { get; init; }

    /// <summary>The path argument of exec and open (as the program passed it), else null.</summary>
    public string? Path { get; init; }

    /// <summary>The open flags (O_*), or 0.</summary>
    public int Flags { get; init; }

    /// <summary>The argv of exec (at most 64 entries), else null.</summary>
    public IReadOnlyList<string>? Arguments { get; init; }

    /// <summary>The address of connect, else null.</summary>
    public string? Address { get; init; }

    /// <summary>The error the call returned, or null when it succeeded.</summary>
    public Errno? Errno { get; init; }

    /// <summary>Whether the call was refused with EACCES or EPERM.</summary>
    public bool IsDenied => Errno is AppKernel.Errno.EACCES or AppKernel.Errno.EPERM;

    /// <inheritdoc/>
    public override string ToString() =>
        $"[{Pid}] {SyscallName} {Path ?? Address}{(Arguments is null ? "" : " " + string.Join(' ', Arguments))} = {(Errno is { } e ? "-" + e : "0")}";
}
