using AppKernel.Sentry.Abi;
using AppKernel.Sentry.Kernel;
using AppKernel.Sentry.Vfs;
using AppKernel.Syscalls;
using AppKernel.Vfs;

namespace AppKernel.Sentry.Syscalls;

/// <summary>stat, statx, statfs and access in all their forms.</summary>
internal static class StatSyscalls
{
    [Syscall(4)]
    public static SyscallResult Stat(ISyscallContext c) => StatPath(c.Task(), LinuxConstants.AT_FDCWD, c.Arguments.A0, c.Arguments.A1, 0);

    [Syscall(6)]
    public static SyscallResult Lstat(ISyscallContext c) =>
        StatPath(c.Task(), LinuxConstants.AT_FDCWD, c.Arguments.A0, c.Arguments.A1, LinuxConstants.AT_SYMLINK_NOFOLLOW);

    [Syscall(5)]
    public static SyscallResult Fstat(ISyscallContext c)
    {
        var t = c.Task();
        var description = t.Fds.Get((int)c.Arguments.A0);
        var stat = ToStat(description.Operations.Inode ?? description.Path?.Inode, description.Path?.Mount);
        t.Mm.WriteValue(c.Arguments.A1, stat);
        return SyscallResult.Zero;
    }

    [Syscall(262)]
    public static SyscallResult Newfstatat(ISyscallContext c)
    {
        var a = c.Arguments;
        int flags = (int)a.A3;
        if ((flags & ~(LinuxConstants.AT_SYMLINK_NOFOLLOW | LinuxConstants.AT_EMPTY_PATH | LinuxConstants.AT_NO_AUTOMOUNT | LinuxConstants.AT_STATX_SYNC_TYPE)) != 0)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        return StatPath(c.Task(), (int)a.A0, a.A1, a.A2, flags);
    }

    private static SyscallResult StatPath(KernelTask t, int dirfd, ulong pathAddress, ulong statAddress, int flags)
    {
        string path = t.ReadPath(pathAddress);
        if (!SyscallSupport.TryResolveAt(t, dirfd, path, flags, out var resolution))
        {
            return SyscallResult.Error(Errno.ENOENT);
        }

        var stat = resolution.Description is { } description
            ? ToStat(description.Operations.Inode, description.Path?.Mount)
            : ToStat(resolution.Path.Inode, resolution.Path.Mount);
        t.Mm.WriteValue(statAddress, stat);
        return SyscallResult.Zero;
    }

    /// <summary>Anonymous files (pipes, host stdio) show this st_dev, like Linux's pipefs/anon_inodefs.</summary>
    private const ulong AnonymousDevice = 0xc;

    public static LinuxStat ToStat(IInode? inode, Mount? mount)
    {
        if (inode is null)
        {
            return new LinuxStat { Dev = AnonymousDevice, Mode = (uint)AppKernel.Vfs.FileMode.Fifo | 0x180, Nlink = 1, BlockSize = 4096 };
        }

        var a = inode.GetAttributes();
        return new LinuxStat
        {
            Dev = mount?.Device ?? AnonymousDevice,
            Ino = a.Ino,
            Nlink = a.Links,
            Mode = (uint)a.Mode,
            Uid = (uint)a.Uid,
            Gid = (uint)a.Gid,
            Rdev = a.Rdev,
            Size = a.Size,
            BlockSize = a.BlockSize == 0 ? 4096 : a.BlockSize,
            Blocks = a.Blocks,
            Atime = a.AccessTime.Seconds,
            AtimeNsec = a.AccessTime.Nanoseconds,
            Mtime = a.ModifyTime.Seconds,
            MtimeNsec = a.ModifyTime.Nanoseconds,
            Ctime = a.ChangeTime.Seconds,
            CtimeNsec = a.ChangeTime.Nanoseconds,
        };
    }

    [Syscall(332)]
    public static SyscallResult Statx(ISyscallContext c)
    {
        var t = c.Task();
        var a = c.Arguments;
        int dirfd = (int)a.A0;
        int flags = (int)a.A2;
        uint mask = (uint)a.A3;
        const int allowed = LinuxConstants.AT_SYMLINK_NOFOLLOW | LinuxConstants.AT_EMPTY_PATH | LinuxConstants.AT_NO_AUTOMOUNT | LinuxConstants.AT_STATX_SYNC_TYPE;
        if ((flags & ~allowed) != 0 || (flags & LinuxConstants.AT_STATX_SYNC_TYPE) == LinuxConstants.AT_STATX_SYNC_TYPE || (mask & 0x80000000) != 0)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        string path = t.ReadPath(a.A1);
        if (!SyscallSupport.TryResolveAt(t, dirfd, path, flags, out var resolution))
        {
            return SyscallResult.Error(Errno.ENOENT);
        }

        var inode = resolution.Description?.Operations.Inode ?? resolution.Path.Inode;
        var mount = resolution.Description?.Path?.Mount ?? (resolution.Description is null ? resolution.Path.Mount : null);
        var stat = ToStat(inode, mount);
        var attributes = inode?.GetAttributes() ?? default;
        var statx = new LinuxStatx
        {
            Mask = LinuxConstants.STATX_BASIC_STATS | LinuxConstants.STATX_MNT_ID | (attributes.BirthTime.Seconds != 0 ? LinuxConstants.STATX_BTIME : 0),
            BlockSize = (uint)stat.BlockSize,
            Nlink = (uint)stat.Nlink,
            Uid = stat.Uid,
            Gid = stat.Gid,
            Mode = (ushort)stat.Mode,
            Ino = stat.Ino,
            Size = (ulong)stat.Size,
            Blocks = (ulong)stat.Blocks,
            Atime = new StatxTimestamp { Seconds = stat.Atime, Nanoseconds = (uint)stat.AtimeNsec },
            Mtime = new StatxTimestamp { Seconds = stat.Mtime, Nanoseconds = (uint)stat.MtimeNsec },
            Ctime = new StatxTimestamp { Seconds = stat.Ctime, Nanoseconds = (uint)stat.CtimeNsec },
            Btime = new StatxTimestamp { Seconds = attributes.BirthTime.Seconds, Nanoseconds = (uint)attributes.BirthTime.Nanoseconds },
            RdevMajor = LinuxConstants.Major(stat.Rdev),
            RdevMinor = LinuxConstants.Minor(stat.Rdev),
            DevMajor = LinuxConstants.Major(stat.Dev),
            DevMinor = LinuxConstants.Minor(stat.Dev),
            MountId = (ulong)(mount?.Id ?? 0),
        };
        t.Mm.WriteValue(a.A4, statx);
        return SyscallResult.Zero;
    }

    [Syscall(137)]
    public static SyscallResult Statfs(ISyscallContext c)
    {
        var t = c.Task();
        var path = t.Kernel.Vfs.Resolve(t.PathContext, t.ReadPath(c.Arguments.A0), followFinal: true).Path;
        t.Mm.WriteValue(c.Arguments.A1, ToStatfs(path.Mount));
        return SyscallResult.Zero;
    }

    [Syscall(138)]
    public static SyscallResult Fstatfs(ISyscallContext c)
    {
        var t = c.Task();
        var description = t.Fds.Get((int)c.Arguments.A0);
        var statfs = description.Path is { } path
            ? ToStatfs(path.Mount)
            : new LinuxStatfs { Type = 0x50495045 /* PIPEFS_MAGIC */, BlockSize = 4096, NameLength = 255, FragmentSize = 4096 };
        t.Mm.WriteValue(c.Arguments.A1, statfs);
        return SyscallResult.Zero;
    }

    private static LinuxStatfs ToStatfs(Mount mount)
    {
        var s = mount.FileSystem.GetStatistics();
        return new LinuxStatfs
        {
            Type = s.Type,
            BlockSize = s.BlockSize,
            Blocks = s.Blocks,
            FreeBlocks = s.FreeBlocks,
            AvailableBlocks = s.AvailableBlocks,
            Files = s.Files,
            FreeFiles = s.FreeFiles,
            Fsid0 = (int)mount.DeviceMinor,
            NameLength = s.NameLength,
            FragmentSize = s.BlockSize,
            Flags = (mount.ReadOnly ? 1 : 0) | 0x20, // ST_RDONLY, ST_VALID... and ST_RELATIME-like defaults
        };
    }

    [Syscall(21)]
    public static SyscallResult Access(ISyscallContext c) => AccessAt(c.Task(), LinuxConstants.AT_FDCWD, c.Arguments.A0, (int)c.Arguments.A1, 0);

    [Syscall(269)]
    public static SyscallResult Faccessat(ISyscallContext c) => AccessAt(c.Task(), (int)c.Arguments.A0, c.Arguments.A1, (int)c.Arguments.A2, 0);

    [Syscall(439)]
    public static SyscallResult Faccessat2(ISyscallContext c)
    {
        int flags = (int)c.Arguments.A3;
        if ((flags & ~(LinuxConstants.AT_EACCESS | LinuxConstants.AT_SYMLINK_NOFOLLOW | LinuxConstants.AT_EMPTY_PATH)) != 0)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        return AccessAt(c.Task(), (int)c.Arguments.A0, c.Arguments.A1, (int)c.Arguments.A2, flags);
    }

    private static SyscallResult AccessAt(KernelTask t, int dirfd, ulong pathAddress, int mode, int flags)
    {
        if ((mode & ~7) != 0)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        string path = t.ReadPath(pathAddress);
        // access(2) checks with the real ids unless AT_EACCESS.
        var credentials = (flags & LinuxConstants.AT_EACCESS) != 0
            ? t.Credentials
            : t.Credentials.ForAccessCheck();
        var context = t.PathContextAt(dirfd, path) with { Credentials = credentials };
        Resolution resolution;
        if (path.Length == 0)
        {
            resolution = SyscallSupport.ResolveAt(t, dirfd, path, flags);
        }
        else
        {
            if (!t.Kernel.Vfs.TryResolve(context, path, (flags & LinuxConstants.AT_SYMLINK_NOFOLLOW) == 0, out resolution))
            {
                return SyscallResult.Error(Errno.ENOENT);
            }
        }

        if (mode == LinuxConstants.F_OK)
        {
            return SyscallResult.Zero;
        }

        var inode = resolution.Inode;
        var attributes = inode.GetAttributes();
        if ((mode & LinuxConstants.W_OK) != 0 && resolution.Description is null && resolution.Path.Mount.ReadOnly &&
            attributes.Mode.Type() is AppKernel.Vfs.FileMode.Regular or AppKernel.Vfs.FileMode.Directory or AppKernel.Vfs.FileMode.Symlink)
        {
            return SyscallResult.Error(Errno.EROFS);
        }

        return Permissions.MayAccess(attributes, credentials, mode) ? SyscallResult.Zero : SyscallResult.Error(Errno.EACCES);
    }
}
