using AppKernel.Platform.Ptrace;

namespace AppKernel;

/// <summary>Selects the ptrace platform.</summary>
public static class PtracePlatformBuilderExtensions
{
    /// <summary>Registers the ptrace platform under the name <c>ptrace</c> and selects it unless the options name another.</summary>
    public static IAppKernelBuilder UsePtracePlatform(this IAppKernelBuilder builder) =>
        builder.UsePlatform<PtracePlatform>("ptrace");
}
