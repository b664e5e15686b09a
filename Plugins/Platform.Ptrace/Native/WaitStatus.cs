namespace AppKernel.Platform.Ptrace.Native;

/// <summary>A decoded <c>waitpid</c> status (the W* macros of sys/wait.h).</summary>
internal readonly struct WaitStatus(int raw)
{
    public int Raw => raw;

    public bool Exited => (raw & 0x7f) == 0;

    public int ExitCode => (raw >> 8) & 0xff;

    public bool Signaled => (raw & 0x7f) != 0 && (raw & 0x7f) != 0x7f;

    public int TermSignal => raw & 0x7f;

    public bool Stopped => (raw & 0xff) == 0x7f;

    public int StopSignal => (raw >> 8) & 0xff;

    /// <summary>The PTRACE_EVENT_* of an event stop, 0 otherwise.</summary>
    public int Event => (raw >> 16) & 0xff;

    /// <summary>Describes how a thread that is no longer stopped ended.</summary>
    public string DescribeEnd() =>
        Exited ? $"exited with status {ExitCode}" :
        Signaled ? $"was killed by signal {TermSignal}" :
        $"reported wait status 0x{raw:x}";
}
