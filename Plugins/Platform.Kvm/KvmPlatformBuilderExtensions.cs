using AppKernel.Platform.Kvm;

namespace AppKernel;

/// <summary>Selects the KVM platform.</summary>
public static class KvmPlatformBuilderExtensions
{
    /// <summary>Registers the KVM platform under the name <c>kvm</c> and selects it unless the options name another.</summary>
    public static IAppKernelBuilder UseKvmPlatform(this IAppKernelBuilder builder) =>
        builder.UsePlatform<KvmPlatform>("kvm");
}
