using AppKernel;
using AppKernel.Syscalls;

namespace AuditTestPlugin;

/// <summary>Registers an interceptor that denies getppid and a handler that replaces getpid.</summary>
public sealed class AuditTestPluginEntry : IAppKernelPlugin
{
    public void Configure(IAppKernelBuilder builder)
    {
        builder.AddSyscallInterceptor<DenyGetppid>();
        builder.AddSyscallHandler(39, "getpid", _ => SyscallResult.Ok(4242));
    }
}

/// <summary>Denies getppid (110) with EACCES; counts the calls it saw in the context's first argument slot's echo.</summary>
public sealed class DenyGetppid : ISyscallInterceptor
{
    public int Seen { get; private set; }

    public IReadOnlyCollection<int>? Syscalls => [110];

    public SyscallResult Intercept(ISyscallContext context, SyscallInvoker next)
    {
        Seen++;
        return SyscallResult.Error(Errno.EACCES);
    }
}
