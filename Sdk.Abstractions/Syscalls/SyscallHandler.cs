namespace AppKernel.Syscalls;

/// <summary>Handles one syscall.</summary>
public delegate SyscallResult SyscallHandler(ISyscallContext context);

/// <summary>The rest of the interceptor pipeline, ending in the syscall's handler.</summary>
public delegate SyscallResult SyscallInvoker(ISyscallContext context);

/// <summary>
/// A syscall implementation contributed by a plugin: adds a syscall the Sentry lacks or
/// replaces one it has. At most one plugin may replace a given syscall.
/// </summary>
public interface ISyscallHandler
{
    /// <summary>The x86-64 syscall number.</summary>
    int Number { get; }

    /// <summary>The syscall's name (e.g. <c>openat</c>).</summary>
    string Name { get; }

    /// <summary>How complete this implementation is.</summary>
    SupportLevel Support => SupportLevel.Full;

    /// <summary>Handles one call.</summary>
    SyscallResult Handle(ISyscallContext context);
}
