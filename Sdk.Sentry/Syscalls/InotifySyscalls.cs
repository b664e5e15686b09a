using AppKernel.Sentry.Abi;
using AppKernel.Sentry.Vfs;
using AppKernel.Syscalls;
using AppKernel.Vfs;

namespace AppKernel.Sentry.Syscalls;

/// <summary>inotify_init, inotify_init1, inotify_add_watch, inotify_rm_watch (<see cref="InotifyInstance"/>).</summary>
internal static class InotifySyscalls
{
    private const uint AllInotifyBits = InotifyMask.AllEvents | InotifyMask.Unmount | InotifyMask.QueueOverflow | InotifyMask.Ignored
        | InotifyMask.OnlyDir | InotifyMask.DontFollow | InotifyMask.ExclUnlink | InotifyMask.MaskAdd | InotifyMask.MaskCreate
        | InotifyMask.IsDir | InotifyMask.OneShot;

    [Syscall(253)]
    public static SyscallResult InotifyInit(ISyscallContext c) => Create(c, 0);

    [Syscall(294)]
    public static SyscallResult InotifyInit1(ISyscallContext c) => Create(c, (uint)c.Arguments.A0);

    private static SyscallResult Create(ISyscallContext c, uint flags)
    {
        const uint allowed = (uint)(OpenFlags.NonBlocking | OpenFlags.CloseOnExec);
        if ((flags & ~allowed) != 0)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        var t = c.Task();
        var instance = new InotifyInstance(t.Kernel.Vfs.Inotify);
        var description = new FileDescription(instance, null, OpenFlags.ReadOnly | ((OpenFlags)flags & OpenFlags.NonBlocking), "anon_inode:inotify");
        return SyscallResult.Ok(AnonymousFiles.Install(t, description, (flags & (uint)OpenFlags.CloseOnExec) != 0));
    }

    [Syscall(254, SupportLevel.Partial, Note = "events come from changes made inside the sandbox (tmpfs, overlay, gofer files); IN_DELETE_SELF comes at the last unlink even while the file is open; IN_EXCL_UNLINK is ignored")]
    public static SyscallResult InotifyAddWatch(ISyscallContext c)
    {
        var t = c.Task();
        var a = c.Arguments;
        uint mask = (uint)a.A2;
        if ((mask & InotifyMask.MaskAdd) != 0 && (mask & InotifyMask.MaskCreate) != 0)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        if ((mask & AllInotifyBits) == 0)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        var description = t.Fds.Get((int)a.A0);
        if (description.Operations is not InotifyInstance instance)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        string path = t.ReadPath(a.A1);
        var resolution = t.Kernel.Vfs.Resolve(t.PathContextAt(LinuxConstants.AT_FDCWD, path), path, followFinal: (mask & InotifyMask.DontFollow) == 0);
        var inode = resolution.Inode;
        var attributes = inode.GetAttributes();
        if ((mask & InotifyMask.OnlyDir) != 0 && !attributes.Mode.IsDirectory())
        {
            return SyscallResult.Error(Errno.ENOTDIR);
        }

        Permissions.Check(attributes, t.Credentials, Permissions.Read);
        if ((mask & InotifyMask.AllEvents) == 0)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        return SyscallResult.Ok(instance.AddWatch(inode, mask));
    }

    [Syscall(255)]
    public static SyscallResult InotifyRmWatch(ISyscallContext c)
    {
        var t = c.Task();
        var description = t.Fds.Get((int)c.Arguments.A0);
        if (description.Operations is not InotifyInstance instance)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        instance.RemoveWatch((int)c.Arguments.A1);
        return SyscallResult.Zero;
    }
}
