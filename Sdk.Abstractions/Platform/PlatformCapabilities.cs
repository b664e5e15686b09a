namespace AppKernel.Platform;

/// <summary>What a platform supports beyond the basics every platform must provide.</summary>
[Flags]
public enum PlatformCapabilities
{
    /// <summary>Only the basics: one thread per address space, syscalls and faults trapped.</summary>
    None = 0,

    /// <summary>Several execution contexts may run in one address space at once.</summary>
    MultipleThreads = 1,

    /// <summary>Faults report whether the access was a read, write or instruction fetch.</summary>
    PreciseFaultAccess = 2,

    /// <summary>The platform runs program code in a hardware VM.</summary>
    HardwareVirtualization = 4,

    /// <summary>
    /// The program runs on the host thread that calls <see cref="IExecutionContext.Switch"/> (as a vCPU
    /// does inside KVM_RUN), so <see cref="IExecutionContext.CpuTime"/> is part of that thread's CPU
    /// clock: the Sentry's own (system) time on that thread is its clock less the program's time.
    /// Without it, the program's CPU time is spent elsewhere (a traced stub process).
    /// </summary>
    CpuTimeInTaskThread = 8,

    /// <summary>
    /// Nothing of the platform's is tied to the life of the host thread that ran a context: once the
    /// context is disposed, that thread may run another task's contexts. The Sentry then keeps task
    /// threads in a pool instead of starting one per task. (The ptrace platform may not: Linux
    /// releases a tracer's unreaped tracees only when the tracing thread ends.)
    /// </summary>
    ReusableTaskThreads = 16,
}
