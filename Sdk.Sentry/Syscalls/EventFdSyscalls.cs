using AppKernel.Sentry.Kernel.Events;
using AppKernel.Sentry.Vfs;
using AppKernel.Syscalls;
using AppKernel.Vfs;

namespace AppKernel.Sentry.Syscalls;

/// <summary>eventfd and eventfd2 (<see cref="EventFd"/>).</summary>
internal static class EventFdSyscalls
{
    private const uint EFD_SEMAPHORE = 1;
    private const uint EFD_NONBLOCK = (uint)OpenFlags.NonBlocking;
    private const uint EFD_CLOEXEC = (uint)OpenFlags.CloseOnExec;

    [Syscall(284)]
    public static SyscallResult Eventfd(ISyscallContext c) => Create(c, (uint)c.Arguments.A0, 0);

    [Syscall(290)]
    public static SyscallResult Eventfd2(ISyscallContext c) => Create(c, (uint)c.Arguments.A0, (uint)c.Arguments.A1);

    private static SyscallResult Create(ISyscallContext c, uint initial, uint flags)
    {
        if ((flags & ~(EFD_SEMAPHORE | EFD_NONBLOCK | EFD_CLOEXEC)) != 0)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        var file = new EventFd(initial, (flags & EFD_SEMAPHORE) != 0);
        var description = new FileDescription(file, null, OpenFlags.ReadWrite | ((OpenFlags)flags & OpenFlags.NonBlocking), "anon_inode:[eventfd]");
        return SyscallResult.Ok(AnonymousFiles.Install(c.Task(), description, (flags & EFD_CLOEXEC) != 0));
    }
}
