using AppKernel.Sentry.Kernel;
using AppKernel.Syscalls;
using static AppKernel.Sentry.Kernel.CloneArguments;

namespace AppKernel.Sentry.Syscalls;

/// <summary>
/// setns(2). The sandbox has UTS namespaces of its own and one of every other kind, and no
/// /proc/[pid]/ns files, so the only descriptor that can name a namespace is a pidfd.
/// </summary>
internal static class NamespaceSyscalls
{
    private const int CAP_SYS_ADMIN = 21;

    /// <summary>CLONE_NEWTIME, which only setns and unshare know (it collides with CSIGNAL in clone).</summary>
    private const ulong CLONE_NEWTIME = 0x80;

    [Syscall(308, SupportLevel.Partial, Note = "pidfds only (no /proc/[pid]/ns files); joins the target's UTS namespace, the others are shared by the whole sandbox")]
    public static SyscallResult Setns(ISyscallContext c)
    {
        var t = c.Task();
        int fd = (int)c.Arguments.A0;
        ulong flags = (uint)c.Arguments.A1;
        var description = t.Fds.Get(fd);
        if (description.Operations is not PidFile pidFile)
        {
            // A regular file, a pipe: not a namespace (Linux's EINVAL for non-nsfs, non-pidfd files).
            return SyscallResult.Error(Errno.EINVAL);
        }

        // With a pidfd the flags pick the namespaces to join: at least one, nothing else.
        if (flags == 0 || (flags & ~(NamespaceFlags | CLONE_NEWTIME)) != 0)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        var target = pidFile.Thread ?? pidFile.Group.Leader;
        if (pidFile.HasExited || target is null)
        {
            return SyscallResult.Error(Errno.ESRCH);
        }

        if (!t.Credentials.HasCapability(CAP_SYS_ADMIN))
        {
            return SyscallResult.Error(Errno.EPERM);
        }

        // Re-entering one's own user namespace would regain capabilities: Linux refuses it.
        if ((flags & CLONE_NEWUSER) != 0)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        if ((flags & CLONE_NEWUTS) != 0)
        {
            t.Uts = target.UtsOrRoot;
        }

        return SyscallResult.Zero;
    }
}
