namespace AppKernel.Platform;

/// <summary>Why <see cref="IExecutionContext.Switch"/> returned.</summary>
public enum SwitchReason
{
    /// <summary>The program executed <c>syscall</c>; the number is in <c>orig_rax</c>.</summary>
    Syscall,
    /// <summary>A memory access faulted; see <see cref="SwitchResult.FaultAddress"/>.</summary>
    Fault,
    /// <summary>The CPU raised a synchronous signal (SIGILL, SIGFPE, SIGTRAP, SIGBUS).</summary>
    Signal,
    /// <summary><see cref="IExecutionContext.Interrupt"/> was called.</summary>
    Interrupted,
}

/// <summary>The outcome of one <see cref="IExecutionContext.Switch"/>; a value, so the hot path allocates nothing.</summary>
/// <param name="Reason">Why the program stopped.</param>
/// <param name="Signal">For <see cref="SwitchReason.Signal"/> and <see cref="SwitchReason.Fault"/>: the Linux signal number.</param>
/// <param name="SignalCode">The <c>si_code</c> the CPU event carries (e.g. SEGV_MAPERR, FPE_INTDIV).</param>
/// <param name="FaultAddress">The faulting address (<c>si_addr</c>).</param>
/// <param name="Access">The faulting access, when the platform knows it (<see cref="MemoryAccess.None"/> otherwise).</param>
public readonly record struct SwitchResult(
    SwitchReason Reason,
    int Signal = 0,
    int SignalCode = 0,
    ulong FaultAddress = 0,
    MemoryAccess Access = MemoryAccess.None)
{
    /// <summary>A syscall stop.</summary>
    public static SwitchResult SyscallStop => new(SwitchReason.Syscall);

    /// <summary>An interruption.</summary>
    public static SwitchResult InterruptedStop => new(SwitchReason.Interrupted);
}
