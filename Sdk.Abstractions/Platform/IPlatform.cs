using AppKernel.Memory;

namespace AppKernel.Platform;

/// <summary>
/// A way of running program code and trapping its system calls and faults (ptrace, KVM).
/// The platform never decides what memory is mapped: it mirrors what the Sentry's memory
/// manager tells its <see cref="IAddressSpace"/>.
/// </summary>
public interface IPlatform : IDisposable
{
    /// <summary>The name the options select the platform by, e.g. <c>ptrace</c> or <c>kvm</c>.</summary>
    string Name { get; }

    /// <summary>What this platform can do.</summary>
    PlatformCapabilities Capabilities { get; }

    /// <summary>
    /// The lowest address above the usable program address range: the platform keeps its own
    /// code and data (stub, trampoline) at or above it. The memory manager never maps there.
    /// </summary>
    ulong MaxUserAddress { get; }

    /// <summary>Checks that the platform can run on this machine; throws <see cref="PlatformUnavailableException"/> naming the cause.</summary>
    void EnsureAvailable();

    /// <summary>Creates an empty address space whose mappings come from <paramref name="memoryFile"/>.</summary>
    IAddressSpace CreateAddressSpace(IMemoryFile memoryFile);

    /// <summary>Creates a context that runs one program thread in <paramref name="addressSpace"/>.</summary>
    IExecutionContext CreateExecutionContext(IAddressSpace addressSpace);
}
