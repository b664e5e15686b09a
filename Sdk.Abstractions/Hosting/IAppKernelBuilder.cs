using Microsoft.Extensions.DependencyInjection;

namespace AppKernel;

/// <summary>
/// Composes an AppKernel: returned by <c>AddAppKernel</c>, extended by platform, filesystem,
/// network and syscall plugins through extension methods (<c>UsePtracePlatform()</c>, ...).
/// </summary>
public interface IAppKernelBuilder
{
    /// <summary>The service collection the kernel's parts are registered in.</summary>
    IServiceCollection Services { get; }
}
