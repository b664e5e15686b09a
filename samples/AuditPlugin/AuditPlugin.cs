using AppKernel;
using AppKernel.Syscalls;

namespace AuditPlugin;

/// <summary>
/// The plugin's entry point: the loader finds every <see cref="IAppKernelPlugin"/> in the
/// assembly and lets it register its parts. This one adds <see cref="AuditInterceptor"/>.
/// </summary>
public sealed class AuditPluginEntry : IAppKernelPlugin
{
    /// <inheritdoc/>
    public void Configure(IAppKernelBuilder builder) => builder.AddSyscallInterceptor<AuditInterceptor>();
}
