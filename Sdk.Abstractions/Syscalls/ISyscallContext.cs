namespace AppKernel.Syscalls;

/// <summary>
/// One syscall in flight, as handlers and interceptors see it. An interceptor may rewrite
/// <see cref="Number"/> and <see cref="Arguments"/> before calling the next stage.
/// The object is reused for the task's next syscall: do not keep it.
/// </summary>
public interface ISyscallContext
{
    /// <summary>The syscall number (x86-64 table).</summary>
    int Number { get; set; }

    /// <summary>The raw arguments, writable by interceptors.</summary>
    ref SyscallArguments Arguments { get; }

    /// <summary>The thread that made the call.</summary>
    ITaskInfo Task { get; }

    /// <summary>The calling process's memory.</summary>
    IProcessMemory Memory { get; }
}
