using AppKernel.Sentry.Abi;
using AppKernel.Sentry.Kernel;
using AppKernel.Syscalls;
using static AppKernel.Sentry.Kernel.CloneArguments;

namespace AppKernel.Sentry.Syscalls;

/// <summary>clone, clone3, fork, vfork and unshare.</summary>
internal static class CloneSyscalls
{
    [Syscall(56, SupportLevel.Partial, Note = "namespace flags other than CLONE_NEWUTS give EPERM (EINVAL for root); CLONE_PIDFD with CLONE_THREAD gives EINVAL (as before Linux 6.9)")]
    public static SyscallResult Clone(ISyscallContext c)
    {
        var a = c.Arguments;
        ulong flags = a.A0;
        if ((flags & CLONE_PIDFD) != 0 && (flags & CLONE_PARENT_SETTID) != 0)
        {
            // clone(2) passes both through the same pointer.
            return SyscallResult.Error(Errno.EINVAL);
        }

        var args = new CloneArguments(flags & ~(ulong)LinuxConstants.CSIGNAL, (int)(flags & LinuxConstants.CSIGNAL), a.A1, a.A2, a.A3, a.A4, a.A2);
        return SyscallResult.Ok(c.Task().Clone(args));
    }

    [Syscall(57)]
    public static SyscallResult Fork(ISyscallContext c) =>
        SyscallResult.Ok(c.Task().Clone(new CloneArguments(0, Signals.SIGCHLD, 0, 0, 0, 0, 0)));

    [Syscall(58)]
    public static SyscallResult Vfork(ISyscallContext c) =>
        SyscallResult.Ok(c.Task().Clone(new CloneArguments(CLONE_VM | CLONE_VFORK, Signals.SIGCHLD, 0, 0, 0, 0, 0)));

    [Syscall(272, SupportLevel.Partial, Note = "CLONE_FILES, CLONE_FS, CLONE_SYSVSEM and CLONE_NEWUTS; other namespace flags give EPERM (EINVAL for root), as clone")]
    public static SyscallResult Unshare(ISyscallContext c)
    {
        var t = c.Task();
        ulong flags = c.Arguments.A0;
        const ulong known = CLONE_THREAD | CLONE_FS | CLONE_SIGHAND | CLONE_VM | CLONE_FILES | CLONE_SYSVSEM | NamespaceFlags | 0x80 /* CLONE_NEWTIME */;
        if ((flags & ~known) != 0)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        // Sharing a thread group, handlers or memory cannot be undone: fine only when nothing is shared.
        if ((flags & (CLONE_THREAD | CLONE_SIGHAND | CLONE_VM)) != 0 && t.Group.TaskCount > 1)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        if ((flags & CLONE_VM) != 0 && t.Mm is { IsExclusive: false })
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        if ((flags & (NamespaceFlags | 0x80)) != 0)
        {
            if ((flags & (NamespaceFlags | 0x80)) != CLONE_NEWUTS || !t.Credentials.HasCapability(21 /* CAP_SYS_ADMIN */))
            {
                return SyscallResult.Error(t.Credentials.IsRoot ? Errno.EINVAL : Errno.EPERM);
            }

            t.Uts = t.UtsOrRoot.Copy();
        }

        if ((flags & CLONE_FS) != 0)
        {
            t.Fs = t.Fs.Clone();
        }

        if ((flags & CLONE_FILES) != 0)
        {
            var old = t.Fds;
            t.Fds = old.Fork();
            old.RemoveUser();
        }

        return SyscallResult.Zero;
    }

    private const int CloneArgsVersion0Size = 64;

    [Syscall(435, SupportLevel.Partial, Note = "set_tid gives EPERM, CLONE_INTO_CGROUP EINVAL; otherwise as clone")]
    public static SyscallResult Clone3(ISyscallContext c)
    {
        var t = c.Task();
        ulong size = c.Arguments.A1;
        if (size < CloneArgsVersion0Size)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        if (size > 4096)
        {
            return SyscallResult.Error(Errno.E2BIG);
        }

        var raw = new byte[size];
        t.Mm.Read(c.Arguments.A0, raw);
        // Fields this kernel does not know must be zero (E2BIG otherwise), as Linux requires.
        for (ulong i = 88; i < size; i++)
        {
            if (raw[i] != 0)
            {
                return SyscallResult.Error(Errno.E2BIG);
            }
        }

        ulong Field(int index) => index * 8 + 8 <= raw.Length ? BitConverter.ToUInt64(raw, index * 8) : 0;
        ulong flags = Field(0), pidfd = Field(1), childTid = Field(2), parentTid = Field(3), exitSignal = Field(4),
            stack = Field(5), stackSize = Field(6), tls = Field(7), setTid = Field(8), setTidSize = Field(9);
        if ((flags & (ulong)LinuxConstants.CSIGNAL) != 0 || exitSignal > Signals.NSIG)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        if ((stack == 0) != (stackSize == 0) && stack == 0)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        if (setTid != 0 || setTidSize != 0)
        {
            return SyscallResult.Error(setTidSize > 32 ? Errno.EINVAL : Errno.EPERM);
        }

        if ((flags & CLONE_INTO_CGROUP) != 0)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        var args = new CloneArguments(flags, (int)exitSignal, stack == 0 ? 0 : stack + stackSize, parentTid, childTid, tls, pidfd);
        return SyscallResult.Ok(t.Clone(args));
    }
}
