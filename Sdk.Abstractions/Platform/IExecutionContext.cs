namespace AppKernel.Platform;

/// <summary>
/// Runs one program thread. <see cref="Switch"/> is always called from the same host thread
/// (the task's own), which ptrace requires; <see cref="Interrupt"/> may be called from any thread.
/// </summary>
public interface IExecutionContext : IDisposable
{
    /// <summary>
    /// Runs the program with <paramref name="state"/> until it makes a syscall, faults, receives
    /// a host signal, or is interrupted; on return <paramref name="state"/> holds its registers.
    /// </summary>
    SwitchResult Switch(CpuState state);

    /// <summary>Makes a running or future <see cref="Switch"/> return <see cref="SwitchReason.Interrupted"/> soon.</summary>
    void Interrupt();

    /// <summary>Reads the program's FP/SSE/AVX state (XSAVE layout) into <see cref="CpuState.ExtendedState"/>.</summary>
    void LoadExtendedState(CpuState state);

    /// <summary>
    /// The CPU time this program thread has used on the platform so far: the time spent running
    /// program code, and the host kernel's work on its behalf (traps, stops). After
    /// <see cref="IDisposable.Dispose"/> it keeps reporting the final figure. May be read from any
    /// thread. Platforms that cannot tell report <see cref="TimeSpan.Zero"/>.
    /// </summary>
    TimeSpan CpuTime => TimeSpan.Zero;
}
