using AppKernel;
using AppKernel.Syscalls;

namespace DuplicatePlugin;

/// <summary>Replaces getpid as AuditTestPlugin does: loading both must fail with a clear message.</summary>
public sealed class DuplicatePluginEntry : IAppKernelPlugin
{
    public void Configure(IAppKernelBuilder builder) => builder.AddSyscallHandler<ReplacementGetpid>();
}

/// <summary>getpid that always answers 1.</summary>
public sealed class ReplacementGetpid : ISyscallHandler
{
    public int Number => 39;

    public string Name => "getpid";

    public SyscallResult Handle(ISyscallContext context) => SyscallResult.Ok(1);
}
