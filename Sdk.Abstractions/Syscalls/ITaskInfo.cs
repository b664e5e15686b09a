namespace AppKernel.Syscalls;

/// <summary>What a plugin may know about the thread that made a syscall. Ids are the sandbox's own.</summary>
public interface ITaskInfo
{
    /// <summary>The thread id in the sandbox's PID namespace.</summary>
    int Tid { get; }

    /// <summary>The process (thread group) id.</summary>
    int Pid { get; }

    /// <summary>The parent process id.</summary>
    int ParentPid { get; }

    /// <summary>The effective user id.</summary>
    int Uid { get; }

    /// <summary>The effective group id.</summary>
    int Gid { get; }

    /// <summary>The thread's name (<c>comm</c>, at most 15 bytes).</summary>
    string Name { get; }

    /// <summary>The path of the executable the process runs.</summary>
    string ExecutablePath { get; }

    /// <summary>The sandbox's id (for logs and audit events).</summary>
    string SandboxId { get; }
}
