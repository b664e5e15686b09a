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
}
