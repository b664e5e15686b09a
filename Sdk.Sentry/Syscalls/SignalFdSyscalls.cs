using AppKernel.Sentry.Abi;
using AppKernel.Sentry.Kernel.Events;
using AppKernel.Sentry.Vfs;
using AppKernel.Syscalls;
using AppKernel.Vfs;

namespace AppKernel.Sentry.Syscalls;

/// <summary>signalfd and signalfd4 (<see cref="SignalFd"/>): a new file, or a new mask for an existing one.</summary>
internal static class SignalFdSyscalls
{
    private const ulong SigsetSize = 8;
    private const uint SFD_NONBLOCK = (uint)OpenFlags.NonBlocking;
    private const uint SFD_CLOEXEC = (uint)OpenFlags.CloseOnExec;

    [Syscall(282)]
    public static SyscallResult Signalfd(ISyscallContext c) => Create(c, 0);

    [Syscall(289)]
    public static SyscallResult Signalfd4(ISyscallContext c) => Create(c, (uint)c.Arguments.A3);

    private static SyscallResult Create(ISyscallContext c, uint flags)
    {
        var t = c.Task();
        var a = c.Arguments;
        int fd = (int)a.A0;
        if (a.A2 != SigsetSize)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        ulong mask = t.Mm.ReadValue<ulong>(a.A1) & ~Signals.Unblockable;
        if ((flags & ~(SFD_NONBLOCK | SFD_CLOEXEC)) != 0)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        if (fd == -1)
        {
            var file = new SignalFd(t.Group, mask);
            var description = new FileDescription(file, null, OpenFlags.ReadWrite | ((OpenFlags)flags & OpenFlags.NonBlocking), "anon_inode:[signalfd]");
            return SyscallResult.Ok(AnonymousFiles.Install(t, description, (flags & SFD_CLOEXEC) != 0));
        }

        if (t.Fds.Get(fd).Operations is not SignalFd existing)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        existing.Mask = mask;
        return SyscallResult.Ok(fd);
    }
}
