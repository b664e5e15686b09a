using System.Text;
using AppKernel.Sentry.Abi;
using AppKernel.Sentry.Kernel;
using AppKernel.Sentry.Vfs;
using AppKernel.Syscalls;
using AppKernel.Vfs;
using FileMode = AppKernel.Vfs.FileMode;

namespace AppKernel.Sentry.Syscalls;

/// <summary>The namespace: working directory, creating, removing, renaming and linking names, symlinks, modes, owners, times, umask.</summary>
internal static class PathSyscalls
{
    [Syscall(79)]
    public static SyscallResult Getcwd(ISyscallContext c)
    {
        var t = c.Task();
        var a = c.Arguments;
        var cwd = t.Fs.Cwd;
        if (cwd.Dentry.Deleted)
        {
            return SyscallResult.Error(Errno.ENOENT);
        }

        string path = VirtualFileSystem.PathString(cwd, t.Fs.Root);
        if (!VirtualFileSystem.IsAtOrBelow(cwd, t.Fs.Root))
        {
            path = "(unreachable)" + path;
        }

        byte[] bytes = Encoding.UTF8.GetBytes(path + "\0");
        if ((ulong)bytes.Length > a.A1)
        {
            return SyscallResult.Error(Errno.ERANGE);
        }

        t.Mm.Write(a.A0, bytes);
        return SyscallResult.Ok(bytes.Length);
    }

    [Syscall(80)]
    public static SyscallResult Chdir(ISyscallContext c)
    {
        var t = c.Task();
        var path = t.Kernel.Vfs.Resolve(t.PathContext, t.ReadPath(c.Arguments.A0), followFinal: true).Path;
        SetCwd(t, path);
        return SyscallResult.Zero;
    }

    [Syscall(81)]
    public static SyscallResult Fchdir(ISyscallContext c)
    {
        var t = c.Task();
        var description = t.Fds.Get((int)c.Arguments.A0);
        if (description.Path is not { } path)
        {
            return SyscallResult.Error(Errno.ENOTDIR);
        }

        SetCwd(t, path);
        return SyscallResult.Zero;
    }

    private static void SetCwd(KernelTask t, VfsPath path)
    {
        var attributes = path.Inode.GetAttributes();
        if (!attributes.Mode.IsDirectory())
        {
            throw ErrnoException.Of(Errno.ENOTDIR);
        }

        Permissions.Check(attributes, t.Credentials, Permissions.Execute);
        t.Fs.Cwd = path;
    }

    [Syscall(161)]
    public static SyscallResult Chroot(ISyscallContext c)
    {
        var t = c.Task();
        if (!t.Credentials.IsRoot)
        {
            return SyscallResult.Error(Errno.EPERM);
        }

        var path = t.Kernel.Vfs.Resolve(t.PathContext, t.ReadPath(c.Arguments.A0), followFinal: true).Path;
        var attributes = path.Inode.GetAttributes();
        if (!attributes.Mode.IsDirectory())
        {
            return SyscallResult.Error(Errno.ENOTDIR);
        }

        Permissions.Check(attributes, t.Credentials, Permissions.Execute);
        t.Fs.Root = path;
        return SyscallResult.Zero;
    }

    [Syscall(95)]
    public static SyscallResult Umask(ISyscallContext c)
    {
        var t = c.Task();
        int old = t.Fs.Umask;
        t.Fs.Umask = (int)(c.Arguments.A0 & 0x1FF);
        return SyscallResult.Ok(old);
    }

    [Syscall(83)]
    public static SyscallResult Mkdir(ISyscallContext c) => MkdirAt(c.Task(), LinuxConstants.AT_FDCWD, c.Arguments.A0, (uint)c.Arguments.A1);

    [Syscall(258)]
    public static SyscallResult Mkdirat(ISyscallContext c) => MkdirAt(c.Task(), (int)c.Arguments.A0, c.Arguments.A1, (uint)c.Arguments.A2);

    private static SyscallResult MkdirAt(KernelTask t, int dirfd, ulong pathAddress, uint mode)
    {
        string path = t.ReadPath(pathAddress);
        t.Kernel.Vfs.MakeDirectory(t.Fs.Umask, t.PathContextAt(dirfd, path), path, (FileMode)(mode & 0xFFF));
        return SyscallResult.Zero;
    }

    [Syscall(133)]
    public static SyscallResult Mknod(ISyscallContext c) => MknodAt(c.Task(), LinuxConstants.AT_FDCWD, c.Arguments.A0, (uint)c.Arguments.A1, c.Arguments.A2);

    [Syscall(259)]
    public static SyscallResult Mknodat(ISyscallContext c) => MknodAt(c.Task(), (int)c.Arguments.A0, c.Arguments.A1, (uint)c.Arguments.A2, c.Arguments.A3);

    private static SyscallResult MknodAt(KernelTask t, int dirfd, ulong pathAddress, uint mode, ulong device)
    {
        string path = t.ReadPath(pathAddress);
        t.Kernel.Vfs.MakeNode(t.Fs.Umask, t.PathContextAt(dirfd, path), path, (FileMode)mode, device);
        return SyscallResult.Zero;
    }

    [Syscall(87)]
    public static SyscallResult Unlink(ISyscallContext c)
    {
        var t = c.Task();
        string path = t.ReadPath(c.Arguments.A0);
        t.Kernel.Vfs.Unlink(t.PathContext, path);
        return SyscallResult.Zero;
    }

    [Syscall(84)]
    public static SyscallResult Rmdir(ISyscallContext c)
    {
        var t = c.Task();
        string path = t.ReadPath(c.Arguments.A0);
        t.Kernel.Vfs.RemoveDirectory(t.PathContext, path);
        return SyscallResult.Zero;
    }

    [Syscall(263)]
    public static SyscallResult Unlinkat(ISyscallContext c)
    {
        var t = c.Task();
        var a = c.Arguments;
        int flags = (int)a.A2;
        if ((flags & ~LinuxConstants.AT_REMOVEDIR) != 0)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        string path = t.ReadPath(a.A1);
        var context = t.PathContextAt((int)a.A0, path);
        if ((flags & LinuxConstants.AT_REMOVEDIR) != 0)
        {
            t.Kernel.Vfs.RemoveDirectory(context, path);
        }
        else
        {
            t.Kernel.Vfs.Unlink(context, path);
        }

        return SyscallResult.Zero;
    }

    [Syscall(82)]
    public static SyscallResult Rename(ISyscallContext c) =>
        RenameAt(c.Task(), LinuxConstants.AT_FDCWD, c.Arguments.A0, LinuxConstants.AT_FDCWD, c.Arguments.A1, 0);

    [Syscall(264)]
    public static SyscallResult Renameat(ISyscallContext c) =>
        RenameAt(c.Task(), (int)c.Arguments.A0, c.Arguments.A1, (int)c.Arguments.A2, c.Arguments.A3, 0);

    [Syscall(316, SupportLevel.Partial, Note = "RENAME_WHITEOUT gives EINVAL")]
    public static SyscallResult Renameat2(ISyscallContext c) =>
        RenameAt(c.Task(), (int)c.Arguments.A0, c.Arguments.A1, (int)c.Arguments.A2, c.Arguments.A3, (uint)c.Arguments.A4);

    private static SyscallResult RenameAt(KernelTask t, int oldDirfd, ulong oldAddress, int newDirfd, ulong newAddress, uint flags)
    {
        if ((flags & ~3u) != 0)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        string oldPath = t.ReadPath(oldAddress);
        string newPath = t.ReadPath(newAddress);
        t.Kernel.Vfs.Rename(t.PathContextAt(oldDirfd, oldPath), oldPath, t.PathContextAt(newDirfd, newPath), newPath, (RenameFlags)flags);
        return SyscallResult.Zero;
    }

    [Syscall(86)]
    public static SyscallResult Link(ISyscallContext c) =>
        LinkAt(c.Task(), LinuxConstants.AT_FDCWD, c.Arguments.A0, LinuxConstants.AT_FDCWD, c.Arguments.A1, 0);

    [Syscall(265)]
    public static SyscallResult Linkat(ISyscallContext c) =>
        LinkAt(c.Task(), (int)c.Arguments.A0, c.Arguments.A1, (int)c.Arguments.A2, c.Arguments.A3, (int)c.Arguments.A4);

    private static SyscallResult LinkAt(KernelTask t, int oldDirfd, ulong oldAddress, int newDirfd, ulong newAddress, int flags)
    {
        if ((flags & ~(LinuxConstants.AT_SYMLINK_FOLLOW | LinuxConstants.AT_EMPTY_PATH)) != 0)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        string oldPath = t.ReadPath(oldAddress);
        string newPath = t.ReadPath(newAddress);
        var existing = SyscallSupport.ResolveAt(t, oldDirfd, oldPath, flags, followDefault: false);
        if (existing.Description is not null)
        {
            return SyscallResult.Error(Errno.EXDEV);
        }

        t.Kernel.Vfs.Link(t.PathContextAt(newDirfd, newPath), existing.Path, newPath);
        return SyscallResult.Zero;
    }

    [Syscall(88)]
    public static SyscallResult Symlink(ISyscallContext c) => SymlinkAt(c.Task(), c.Arguments.A0, LinuxConstants.AT_FDCWD, c.Arguments.A1);

    [Syscall(266)]
    public static SyscallResult Symlinkat(ISyscallContext c) => SymlinkAt(c.Task(), c.Arguments.A0, (int)c.Arguments.A1, c.Arguments.A2);

    private static SyscallResult SymlinkAt(KernelTask t, ulong targetAddress, int dirfd, ulong pathAddress)
    {
        string target = t.ReadPath(targetAddress);
        string path = t.ReadPath(pathAddress);
        t.Kernel.Vfs.MakeSymlink(t.PathContextAt(dirfd, path), target, path);
        return SyscallResult.Zero;
    }

    [Syscall(89)]
    public static SyscallResult Readlink(ISyscallContext c) =>
        ReadlinkAt(c.Task(), LinuxConstants.AT_FDCWD, c.Arguments.A0, c.Arguments.A1, (long)c.Arguments.A2);

    [Syscall(267)]
    public static SyscallResult Readlinkat(ISyscallContext c) =>
        ReadlinkAt(c.Task(), (int)c.Arguments.A0, c.Arguments.A1, c.Arguments.A2, (long)c.Arguments.A3);

    private static SyscallResult ReadlinkAt(KernelTask t, int dirfd, ulong pathAddress, ulong buffer, long size)
    {
        if (size <= 0)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        string path = t.ReadPath(pathAddress);
        var resolution = SyscallSupport.ResolveAt(t, dirfd, path, LinuxConstants.AT_SYMLINK_NOFOLLOW | (path.Length == 0 ? LinuxConstants.AT_EMPTY_PATH : 0));
        var inode = resolution.Inode;
        if (!inode.GetAttributes().Mode.IsSymlink())
        {
            return SyscallResult.Error(path.Length == 0 ? Errno.ENOENT : Errno.EINVAL);
        }

        byte[] target = Encoding.UTF8.GetBytes(inode.ReadLink());
        int n = (int)Math.Min(size, target.Length);
        t.Mm.Write(buffer, target.AsSpan(0, n));
        return SyscallResult.Ok(n);
    }

    [Syscall(90)]
    public static SyscallResult Chmod(ISyscallContext c) => ChmodAt(c.Task(), LinuxConstants.AT_FDCWD, c.Arguments.A0, (uint)c.Arguments.A1, 0);

    [Syscall(268)]
    public static SyscallResult Fchmodat(ISyscallContext c) => ChmodAt(c.Task(), (int)c.Arguments.A0, c.Arguments.A1, (uint)c.Arguments.A2, 0);

    [Syscall(452)]
    public static SyscallResult Fchmodat2(ISyscallContext c)
    {
        int flags = (int)c.Arguments.A3;
        if ((flags & ~(LinuxConstants.AT_SYMLINK_NOFOLLOW | LinuxConstants.AT_EMPTY_PATH)) != 0)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        if ((flags & LinuxConstants.AT_SYMLINK_NOFOLLOW) != 0)
        {
            return SyscallResult.Error(Errno.EOPNOTSUPP);
        }

        return ChmodAt(c.Task(), (int)c.Arguments.A0, c.Arguments.A1, (uint)c.Arguments.A2, flags);
    }

    [Syscall(91)]
    public static SyscallResult Fchmod(ISyscallContext c)
    {
        var t = c.Task();
        var description = t.Fds.Get((int)c.Arguments.A0);
        if (description.IsPathOnly || description.Path is not { } path)
        {
            return SyscallResult.Error(Errno.EBADF);
        }

        ApplyMode(t, path, (uint)c.Arguments.A1);
        return SyscallResult.Zero;
    }

    private static SyscallResult ChmodAt(KernelTask t, int dirfd, ulong pathAddress, uint mode, int flags)
    {
        string path = t.ReadPath(pathAddress);
        var resolution = SyscallSupport.ResolveAt(t, dirfd, path, flags);
        if (resolution.Description is not null)
        {
            return SyscallResult.Error(Errno.EPERM);
        }

        ApplyMode(t, resolution.Path, mode);
        return SyscallResult.Zero;
    }

    private static void ApplyMode(KernelTask t, VfsPath path, uint mode)
    {
        var attributes = path.Inode.GetAttributes();
        if (!Permissions.IsOwnerOrRoot(attributes, t.Credentials))
        {
            throw ErrnoException.Of(Errno.EPERM);
        }

        VirtualFileSystem.CheckWritableMount(path.Mount);
        var bits = (FileMode)(mode & 0xFFF);
        // A non-root owner outside the file's group cannot set set-group-ID (it is silently cleared).
        if (!t.Credentials.IsRoot && !t.Credentials.InGroup(attributes.Gid))
        {
            bits &= ~FileMode.SetGid;
        }

        path.Inode.SetAttributes(new AttributeUpdate(AttributeMask.Mode, Mode: bits));
        t.Kernel.Vfs.Inotify.FileEvent(path, path.Inode, InotifyMask.Attrib);
    }

    [Syscall(92)]
    public static SyscallResult Chown(ISyscallContext c) =>
        ChownAt(c.Task(), LinuxConstants.AT_FDCWD, c.Arguments.A0, (int)c.Arguments.A1, (int)c.Arguments.A2, 0);

    [Syscall(94)]
    public static SyscallResult Lchown(ISyscallContext c) =>
        ChownAt(c.Task(), LinuxConstants.AT_FDCWD, c.Arguments.A0, (int)c.Arguments.A1, (int)c.Arguments.A2, LinuxConstants.AT_SYMLINK_NOFOLLOW);

    [Syscall(260)]
    public static SyscallResult Fchownat(ISyscallContext c)
    {
        int flags = (int)c.Arguments.A4;
        if ((flags & ~(LinuxConstants.AT_SYMLINK_NOFOLLOW | LinuxConstants.AT_EMPTY_PATH)) != 0)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        return ChownAt(c.Task(), (int)c.Arguments.A0, c.Arguments.A1, (int)c.Arguments.A2, (int)c.Arguments.A3, flags);
    }

    [Syscall(93)]
    public static SyscallResult Fchown(ISyscallContext c)
    {
        var t = c.Task();
        var description = t.Fds.Get((int)c.Arguments.A0);
        if (description.IsPathOnly || description.Path is not { } path)
        {
            return SyscallResult.Error(Errno.EBADF);
        }

        ApplyOwner(t, path, (int)c.Arguments.A1, (int)c.Arguments.A2);
        return SyscallResult.Zero;
    }

    private static SyscallResult ChownAt(KernelTask t, int dirfd, ulong pathAddress, int uid, int gid, int flags)
    {
        string path = t.ReadPath(pathAddress);
        var resolution = SyscallSupport.ResolveAt(t, dirfd, path, flags);
        if (resolution.Description is not null)
        {
            return SyscallResult.Error(Errno.EPERM);
        }

        ApplyOwner(t, resolution.Path, uid, gid);
        return SyscallResult.Zero;
    }

    private static void ApplyOwner(KernelTask t, VfsPath path, int uid, int gid)
    {
        var attributes = path.Inode.GetAttributes();
        var credentials = t.Credentials;
        var mask = (uid != -1 ? AttributeMask.Uid : 0) | (gid != -1 ? AttributeMask.Gid : 0);
        // chown clears set-user-ID and (see DroppedByChown) set-group-ID of a non-directory, even
        // as root and even when neither id changes; that mode change needs the owner.
        var drop = Permissions.DroppedByChown(attributes, credentials);
        if (!credentials.IsRoot)
        {
            // A non-root owner may only "change" the user to itself and the group to one of its own.
            bool owner = attributes.Uid == credentials.FsUid;
            bool uidOk = uid == -1 || (owner && uid == attributes.Uid);
            bool gidOk = gid == -1 || (owner && (gid == attributes.Gid || credentials.InGroup(gid)));
            if (!uidOk || !gidOk || (drop != 0 && !owner))
            {
                throw ErrnoException.Of(Errno.EPERM);
            }
        }

        VirtualFileSystem.CheckWritableMount(path.Mount);
        if (drop != 0)
        {
            mask |= AttributeMask.Mode;
        }

        if (mask == 0)
        {
            return;
        }

        path.Inode.SetAttributes(new AttributeUpdate(mask, Mode: attributes.Mode & FileMode.PermissionMask & ~drop, Uid: uid, Gid: gid));
        t.Kernel.Vfs.Inotify.FileEvent(path, path.Inode, InotifyMask.Attrib);
    }

    private const long UTIME_NOW = (1L << 30) - 1, UTIME_OMIT = (1L << 30) - 2;

    [Syscall(280)]
    public static SyscallResult Utimensat(ISyscallContext c)
    {
        var t = c.Task();
        var a = c.Arguments;
        int flags = (int)a.A3;
        if ((flags & ~(LinuxConstants.AT_SYMLINK_NOFOLLOW | LinuxConstants.AT_EMPTY_PATH)) != 0)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        LinuxTimespec atime, mtime;
        if (a.A2 == 0)
        {
            atime = mtime = new LinuxTimespec { Nanoseconds = UTIME_NOW };
        }
        else
        {
            atime = t.Mm.ReadValue<LinuxTimespec>(a.A2);
            mtime = t.Mm.ReadValue<LinuxTimespec>(a.A2 + 16);
            foreach (var ts in new[] { atime, mtime })
            {
                if (ts.Nanoseconds != UTIME_NOW && ts.Nanoseconds != UTIME_OMIT && (ulong)ts.Nanoseconds >= 1_000_000_000)
                {
                    return SyscallResult.Error(Errno.EINVAL);
                }
            }
        }

        VfsPath target;
        if (a.A1 == 0)
        {
            // utimensat(fd, NULL, ...) sets the times of the fd itself (futimens).
            var description = t.Fds.Get((int)a.A0);
            if (description.Path is not { } path)
            {
                return SyscallResult.Error(Errno.EBADF);
            }

            target = path;
        }
        else
        {
            var resolution = SyscallSupport.ResolveAt(t, (int)a.A0, t.ReadPath(a.A1), flags);
            if (resolution.Description is not null)
            {
                return SyscallResult.Error(Errno.EPERM);
            }

            target = resolution.Path;
        }

        SetTimes(t, target, atime, mtime);
        return SyscallResult.Zero;
    }

    [Syscall(235)]
    public static SyscallResult Utimes(ISyscallContext c) => FutimesAt(c.Task(), LinuxConstants.AT_FDCWD, c.Arguments.A0, c.Arguments.A1);

    [Syscall(261)]
    public static SyscallResult Futimesat(ISyscallContext c) => FutimesAt(c.Task(), (int)c.Arguments.A0, c.Arguments.A1, c.Arguments.A2);

    [Syscall(132)]
    public static SyscallResult Utime(ISyscallContext c)
    {
        var t = c.Task();
        var a = c.Arguments;
        LinuxTimespec atime, mtime;
        if (a.A1 == 0)
        {
            atime = mtime = new LinuxTimespec { Nanoseconds = UTIME_NOW };
        }
        else
        {
            atime = new LinuxTimespec { Seconds = t.Mm.ReadValue<long>(a.A1) };
            mtime = new LinuxTimespec { Seconds = t.Mm.ReadValue<long>(a.A1 + 8) };
        }

        var path = t.Kernel.Vfs.Resolve(t.PathContext, t.ReadPath(a.A0), followFinal: true).Path;
        SetTimes(t, path, atime, mtime);
        return SyscallResult.Zero;
    }

    private static SyscallResult FutimesAt(KernelTask t, int dirfd, ulong pathAddress, ulong timesAddress)
    {
        LinuxTimespec atime, mtime;
        if (timesAddress == 0)
        {
            atime = mtime = new LinuxTimespec { Nanoseconds = UTIME_NOW };
        }
        else
        {
            var at = t.Mm.ReadValue<LinuxTimeval>(timesAddress);
            var mt = t.Mm.ReadValue<LinuxTimeval>(timesAddress + 16);
            if ((ulong)at.Microseconds >= 1_000_000 || (ulong)mt.Microseconds >= 1_000_000)
            {
                return SyscallResult.Error(Errno.EINVAL);
            }

            atime = new LinuxTimespec { Seconds = at.Seconds, Nanoseconds = at.Microseconds * 1000 };
            mtime = new LinuxTimespec { Seconds = mt.Seconds, Nanoseconds = mt.Microseconds * 1000 };
        }

        string path = t.ReadPath(pathAddress);
        var resolution = SyscallSupport.ResolveAt(t, dirfd, path, 0);
        SetTimes(t, resolution.Path, atime, mtime);
        return SyscallResult.Zero;
    }

    private static void SetTimes(KernelTask t, VfsPath path, LinuxTimespec atime, LinuxTimespec mtime)
    {
        var attributes = path.Inode.GetAttributes();
        bool bothNow = atime.Nanoseconds == UTIME_NOW && mtime.Nanoseconds == UTIME_NOW;
        if (atime.Nanoseconds == UTIME_OMIT && mtime.Nanoseconds == UTIME_OMIT)
        {
            return;
        }

        // Setting explicit times needs ownership; "now" is enough with write permission.
        if (!Permissions.IsOwnerOrRoot(attributes, t.Credentials))
        {
            if (!bothNow)
            {
                throw ErrnoException.Of(Errno.EPERM);
            }

            Permissions.Check(attributes, t.Credentials, Permissions.Write);
        }

        VirtualFileSystem.CheckWritableMount(path.Mount);
        var now = Timespec.Now;
        AttributeMask mask = 0;
        Timespec a = default, m = default;
        if (atime.Nanoseconds != UTIME_OMIT)
        {
            mask |= AttributeMask.AccessTime;
            a = atime.Nanoseconds == UTIME_NOW ? now : new Timespec(atime.Seconds, atime.Nanoseconds);
        }

        if (mtime.Nanoseconds != UTIME_OMIT)
        {
            mask |= AttributeMask.ModifyTime;
            m = mtime.Nanoseconds == UTIME_NOW ? now : new Timespec(mtime.Seconds, mtime.Nanoseconds);
        }

        path.Inode.SetAttributes(new AttributeUpdate(mask, AccessTime: a, ModifyTime: m));
        t.Kernel.Vfs.Inotify.FileEvent(path, path.Inode, InotifyMask.Attrib);
    }
}
