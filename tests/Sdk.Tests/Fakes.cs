using AppKernel.Memory;
using AppKernel.Platform;
using AppKernel.Syscalls;

namespace AppKernel.Sdk.Tests;

/// <summary>A syscall in flight without a kernel: enough to drive the dispatcher directly.</summary>
internal sealed class FakeSyscallContext(int number) : ISyscallContext, ITaskInfo, IProcessMemory
{
    private SyscallArguments arguments;

    public int Number { get; set; } = number;

    public ref SyscallArguments Arguments => ref arguments;

    public ITaskInfo Task => this;

    public IProcessMemory Memory => this;

    public int Tid => 1;

    public int Pid => 1;

    public int ParentPid => 0;

    public int Uid => 0;

    public int Gid => 0;

    public string Name => "fake";

    public string ExecutablePath => "/fake";

    public string SandboxId => "test";

    public void Read(ulong address, Span<byte> destination) => throw new ErrnoException(Errno.EFAULT);

    public void Write(ulong address, ReadOnlySpan<byte> source) => throw new ErrnoException(Errno.EFAULT);

    public string ReadCString(ulong address, int maxLength = 4096) => throw new ErrnoException(Errno.EFAULT);
}

/// <summary>A platform that exists only to be selected and validated.</summary>
internal sealed class FakePlatform : IPlatform
{
    public string Name => "fake";

    public PlatformCapabilities Capabilities => PlatformCapabilities.None;

    public ulong MaxUserAddress => 0x7fff_0000_0000;

    public void EnsureAvailable() => throw new PlatformUnavailableException("the fake platform cannot run programs");

    public IAddressSpace CreateAddressSpace(IMemoryFile memoryFile) => throw new NotSupportedException();

    public IExecutionContext CreateExecutionContext(IAddressSpace addressSpace) => throw new NotSupportedException();

    public void Dispose()
    {
    }
}

/// <summary>Rewrites getppid (110) into getpid (39): the pipeline must honour the new number.</summary>
internal sealed class RewriteToGetpid : ISyscallInterceptor
{
    public IReadOnlyCollection<int>? Syscalls => [110];

    public SyscallResult Intercept(ISyscallContext context, SyscallInvoker next)
    {
        context.Number = 39;
        return next(context);
    }
}

/// <summary>Records every call it sees and lets it through.</summary>
internal sealed class RecordingInterceptor : ISyscallInterceptor
{
    public List<int> Seen { get; } = new();

    public SyscallResult Intercept(ISyscallContext context, SyscallInvoker next)
    {
        Seen.Add(context.Number);
        return next(context);
    }
}
