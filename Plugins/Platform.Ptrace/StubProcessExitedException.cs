namespace AppKernel.Platform.Ptrace;

/// <summary>
/// The stub process that runs a program thread is gone (killed from outside, killed because its
/// tracer thread ended, or disposed), so the operation on its thread cannot complete.
/// The address space it belonged to is lost; the Sentry should treat the process as killed.
/// </summary>
public sealed class StubProcessExitedException : InvalidOperationException
{
    /// <summary>Creates the exception for stub thread <paramref name="threadId"/> of stub process <paramref name="processId"/>.</summary>
    public StubProcessExitedException(int processId, int threadId, string how)
        : base($"The ptrace stub process {processId} (thread {threadId}) {how}; the program's address space is gone.")
    {
        ProcessId = processId;
        ThreadId = threadId;
    }

    /// <summary>The host process id of the stub.</summary>
    public int ProcessId { get; }

    /// <summary>The host thread id of the stub thread.</summary>
    public int ThreadId { get; }
}
