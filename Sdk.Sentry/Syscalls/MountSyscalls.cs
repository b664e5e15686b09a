using AppKernel.Sentry.Fs.Tmpfs;
using AppKernel.Sentry.Kernel;
using AppKernel.Sentry.Vfs;
using AppKernel.Syscalls;
using AppKernel.Vfs;

namespace AppKernel.Sentry.Syscalls;

/// <summary>mount and umount2 inside the sandbox's own mount tree: tmpfs instances only, never the host's.</summary>
internal static class MountSyscalls
{
    private const ulong MS_RDONLY = 1, MS_REMOUNT = 32, MS_BIND = 4096, MS_MOVE = 8192, MS_REC = 16384,
        MS_UNBINDABLE = 1 << 17, MS_PRIVATE = 1 << 18, MS_SLAVE = 1 << 19, MS_SHARED = 1 << 20,
        MS_MGC_MASK = 0xFFFF0000, MS_MGC_VAL = 0xC0ED0000;

    private const ulong Propagation = MS_UNBINDABLE | MS_PRIVATE | MS_SLAVE | MS_SHARED;

    private const int MNT_FORCE = 1, MNT_DETACH = 2, MNT_EXPIRE = 4, UMOUNT_NOFOLLOW = 8;

    [Syscall(165, SupportLevel.Partial, Note = "new tmpfs mounts, MS_REMOUNT of MS_RDONLY, and propagation changes (no-ops: there is no propagation); MS_BIND and MS_MOVE give EINVAL, other filesystem types ENODEV; EPERM for a non-root sandbox user")]
    public static SyscallResult Mount(ISyscallContext c)
    {
        var t = c.Task();
        var a = c.Arguments;
        ulong flags = a.A3;
        if ((flags & MS_MGC_MASK) == MS_MGC_VAL)
        {
            flags &= ~MS_MGC_MASK;
        }

        if (!t.Credentials.IsRoot)
        {
            return SyscallResult.Error(Errno.EPERM);
        }

        string targetPath = t.ReadPath(a.A1);
        var target = t.Kernel.Vfs.Resolve(t.PathContext, targetPath, followFinal: true);
        if (target.Description is not null)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        var path = target.Path;
        if ((flags & Propagation) != 0)
        {
            // Changing propagation: one type at a time, on a mount's root.
            ulong type = flags & Propagation;
            if ((type & (type - 1)) != 0 || (flags & ~(Propagation | MS_REC | 0xFFFF_0000_0000_0000)) != 0 || path.Dentry != path.Mount.Root)
            {
                return SyscallResult.Error(Errno.EINVAL);
            }

            return SyscallResult.Zero;
        }

        if ((flags & MS_REMOUNT) != 0)
        {
            if (path.Dentry != path.Mount.Root)
            {
                return SyscallResult.Error(Errno.EINVAL);
            }

            path.Mount.ReadOnly = (flags & MS_RDONLY) != 0;
            return SyscallResult.Zero;
        }

        if ((flags & (MS_BIND | MS_MOVE)) != 0)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        string type0 = a.A2 == 0 ? throw ErrnoException.Of(Errno.EFAULT) : t.Mm.ReadCString(a.A2, 4096);
        if (type0 != "tmpfs")
        {
            return SyscallResult.Error(Errno.ENODEV);
        }

        if (!path.Inode.GetAttributes().Mode.IsDirectory())
        {
            return SyscallResult.Error(Errno.ENOTDIR);
        }

        string source = a.A0 == 0 ? "none" : t.Mm.ReadCString(a.A0, 4096);
        string? data = a.A4 == 0 ? null : t.Mm.ReadCString(a.A4, 4096);
        var fileSystem = new TmpfsFileSystem(t.Kernel.MemoryFile, TmpfsOptions.Parse(data));
        t.Kernel.Vfs.MountAt(path, fileSystem, source, (flags & MS_RDONLY) != 0);
        return SyscallResult.Zero;
    }

    [Syscall(166, SupportLevel.Partial, Note = "MNT_FORCE and MNT_EXPIRE act as a plain unmount; files mapped after their fd was closed do not keep a mount busy")]
    public static SyscallResult Umount2(ISyscallContext c)
    {
        var t = c.Task();
        var a = c.Arguments;
        int flags = (int)a.A1;
        if ((flags & ~(MNT_FORCE | MNT_DETACH | MNT_EXPIRE | UMOUNT_NOFOLLOW)) != 0
            || ((flags & MNT_EXPIRE) != 0 && (flags & (MNT_FORCE | MNT_DETACH)) != 0))
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        if (!t.Credentials.IsRoot)
        {
            return SyscallResult.Error(Errno.EPERM);
        }

        string targetPath = t.ReadPath(a.A0);
        var target = t.Kernel.Vfs.Resolve(t.PathContext, targetPath, followFinal: (flags & UMOUNT_NOFOLLOW) == 0);
        if (target.Description is not null)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        t.Kernel.Vfs.Unmount(target.Path, (flags & MNT_DETACH) != 0, mount => InUse(t.Kernel, mount));
        return SyscallResult.Zero;
    }

    // Linux's EBUSY test: another task's working directory or root, or an open file, on the mount.
    private static bool InUse(Kernel.Kernel kernel, Mount mount)
    {
        foreach (var task in kernel.Pids.Tasks())
        {
            if (task.Fs.Cwd.Mount == mount || task.Fs.Root.Mount == mount)
            {
                return true;
            }

            foreach (var (_, description) in task.Fds.Snapshot())
            {
                if (description.Path?.Mount == mount)
                {
                    return true;
                }
            }
        }

        return false;
    }
}
