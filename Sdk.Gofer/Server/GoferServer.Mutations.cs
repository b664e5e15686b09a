using AppKernel.Gofer.Native;
using AppKernel.Gofer.Protocol;

namespace AppKernel.Gofer.Server;

/// <summary>Requests that change the host (refused with EROFS under read-only roots).</summary>
internal sealed unsafe partial class GoferServer
{
    private int Create(ref MessageReader r, ref MessageWriter w, out int passFd)
    {
        passFd = -1;
        var dir = Get(r.U64());
        var name = r.StringBytes();
        uint mode = r.U32();
        int flags = (int)r.U32();
        int uid = r.I32();
        int gid = r.I32();
        byte* path = stackalloc byte[Wire.MaxName + 1];
        int errno = CheckMutableDirectory(dir) ?? CheckName(name, path);
        if (errno != 0)
        {
            return errno;
        }

        int access = flags & Host.O_ACCMODE;
        if (access == Host.O_ACCMODE)
        {
            return (int)Errno.EINVAL;
        }

        int fd = OpenConfined(
            dir!.Fd, path, access | Host.O_CREAT | Host.O_EXCL | Host.O_NOFOLLOW | Host.O_CLOEXEC | Host.O_NOCTTY,
            SafeMode(Host.S_IFREG, mode));
        if (fd < 0)
        {
            return -fd;
        }

        errno = AddCreated(dir, name, path, uid, gid, ref w, expectFd: fd);
        if (errno != 0)
        {
            Host.Close(fd);
            return errno;
        }

        passFd = fd;
        return 0;
    }

    private int Mkdir(ref MessageReader r, ref MessageWriter w)
    {
        var dir = Get(r.U64());
        var name = r.StringBytes();
        uint mode = r.U32();
        int uid = r.I32();
        int gid = r.I32();
        byte* path = stackalloc byte[Wire.MaxName + 1];
        int errno = CheckMutableDirectory(dir) ?? CheckName(name, path);
        if (errno != 0)
        {
            return errno;
        }

        if (Host.MkdirAt(dir!.Fd, path, SafeMode(Host.S_IFDIR, mode)) != 0)
        {
            return Host.Errno;
        }

        return AddCreated(dir, name, path, uid, gid, ref w, expectFd: -1);
    }

    private int Mknod(ref MessageReader r, ref MessageWriter w)
    {
        var dir = Get(r.U64());
        var name = r.StringBytes();
        uint mode = r.U32();
        _ = r.U64(); // rdev: meaningless for the types allowed.
        int uid = r.I32();
        int gid = r.I32();
        byte* path = stackalloc byte[Wire.MaxName + 1];
        int errno = CheckMutableDirectory(dir) ?? CheckName(name, path);
        if (errno != 0)
        {
            return errno;
        }

        uint type = mode & Host.S_IFMT;
        if (type == 0)
        {
            type = Host.S_IFREG;
        }

        if (type is not (Host.S_IFIFO or Host.S_IFSOCK or Host.S_IFREG))
        {
            return (int)Errno.EPERM; // No device nodes on the host.
        }

        if (Host.MknodAt(dir!.Fd, path, type | SafeMode(type, mode), 0) != 0)
        {
            return Host.Errno;
        }

        return AddCreated(dir, name, path, uid, gid, ref w, expectFd: -1);
    }

    private int Symlink(ref MessageReader r, ref MessageWriter w)
    {
        var dir = Get(r.U64());
        var name = r.StringBytes();
        var target = r.StringBytes();
        int uid = r.I32();
        int gid = r.I32();
        byte* path = stackalloc byte[Wire.MaxName + 1];
        int errno = CheckMutableDirectory(dir) ?? CheckName(name, path);
        if (errno != 0)
        {
            return errno;
        }

        if (target.Length == 0 || target.Length > Wire.MaxPath || target.IndexOf((byte)0) >= 0)
        {
            return target.Length == 0 ? (int)Errno.ENOENT : (int)Errno.ENAMETOOLONG;
        }

        byte* targetPath = stackalloc byte[target.Length + 1];
        target.CopyTo(new Span<byte>(targetPath, target.Length));
        targetPath[target.Length] = 0;
        if (Host.SymlinkAt(targetPath, dir!.Fd, path) != 0)
        {
            return Host.Errno;
        }

        return AddCreated(dir, name, path, uid, gid, ref w, expectFd: -1);
    }

    private int Link(ref MessageReader r, ref MessageWriter w)
    {
        var dir = Get(r.U64());
        var name = r.StringBytes();
        var target = Get(r.U64());
        byte* path = stackalloc byte[Wire.MaxName + 1];
        int errno = CheckMutableDirectory(dir) ?? CheckName(name, path);
        if (errno != 0)
        {
            return errno;
        }

        if (target is null)
        {
            return (int)Errno.EBADF;
        }

        if (target.IsDirectory)
        {
            return (int)Errno.EPERM;
        }

        if (target.Root != dir!.Root || target.Dev != dir.Dev)
        {
            return (int)Errno.EXDEV;
        }

        // The exact inode when the Gofer may link by descriptor (CAP_DAC_READ_SEARCH); else by
        // one of its names, checked afterwards.
        byte* empty = stackalloc byte[1] { 0 };
        bool linked = Host.LinkAt(target.Fd, empty, dir.Fd, path, Host.AT_EMPTY_PATH) == 0;
        if (!linked)
        {
            errno = Host.Errno;
            if (errno is not ((int)Errno.ENOENT or (int)Errno.EPERM))
            {
                return errno;
            }

            byte* oldPath = stackalloc byte[Wire.MaxName + 1];
            foreach (var alias in nodes.AliasesOf(target, Leases))
            {
                var oldName = System.Text.Encoding.Latin1.GetBytes(alias.Name);
                oldName.CopyTo(new Span<byte>(oldPath, Wire.MaxName));
                oldPath[oldName.Length] = 0;
                if (Host.LinkAt(alias.Parent.Fd, oldPath, dir.Fd, path, 0) == 0)
                {
                    if (StatAt(dir.Fd, path, out var check) == 0 && check.Ino == target.Ino && check.Dev == target.Dev)
                    {
                        linked = true;
                        break;
                    }

                    Host.UnlinkAt(dir.Fd, path, 0);
                }
                else if (Host.Errno is not ((int)Errno.ENOENT))
                {
                    return Host.Errno;
                }
            }

            if (!linked)
            {
                return (int)Errno.ENOENT;
            }
        }

        nodes.AddAlias(target, dir, NodeTable.NameKey(name));
        errno = StatFd(target.Fd, out var stat);
        if (errno == 0)
        {
            WireAttributes.From(stat).Write(ref w);
        }

        return errno;
    }

    private int Unlink(ref MessageReader r, ref MessageWriter w)
    {
        var dir = Get(r.U64());
        var name = r.StringBytes();
        int flags = (int)r.U32();
        byte* path = stackalloc byte[Wire.MaxName + 1];
        int errno = CheckMutableDirectory(dir) ?? CheckName(name, path);
        if (errno != 0)
        {
            return errno;
        }

        if ((flags & ~Host.AT_REMOVEDIR) != 0)
        {
            return (int)Errno.EINVAL;
        }

        errno = StatAt(dir!.Fd, path, out var stat);
        if (errno != 0)
        {
            return errno;
        }

        if (Host.UnlinkAt(dir.Fd, path, flags) != 0)
        {
            return Host.Errno;
        }

        nodes.Unlinked(dir, NodeTable.NameKey(name));
        w.U64(stat.Ino);
        return 0;
    }

    private int Rename(ref MessageReader r, ref MessageWriter w)
    {
        var oldDir = Get(r.U64());
        var oldName = r.StringBytes();
        var newDir = Get(r.U64());
        var newName = r.StringBytes();
        uint flags = r.U32();
        byte* oldPath = stackalloc byte[Wire.MaxName + 1];
        byte* newPath = stackalloc byte[Wire.MaxName + 1];
        int errno = CheckMutableDirectory(oldDir) ?? CheckMutableDirectory(newDir) ?? CheckName(oldName, oldPath);
        if (errno == 0)
        {
            errno = CheckName(newName, newPath);
        }

        if (errno != 0)
        {
            return errno;
        }

        const uint NoReplace = 1, Exchange = 2;
        if ((flags & ~(NoReplace | Exchange)) != 0 || flags == (NoReplace | Exchange))
        {
            return (int)Errno.EINVAL;
        }

        if (oldDir!.Root != newDir!.Root)
        {
            return (int)Errno.EXDEV;
        }

        errno = StatAt(oldDir.Fd, oldPath, out var moved);
        if (errno != 0)
        {
            return errno;
        }

        ulong replaced = StatAt(newDir.Fd, newPath, out var existing) == 0 ? existing.Ino : 0;
        if (Host.RenameAt2(oldDir.Fd, oldPath, newDir.Fd, newPath, flags) != 0)
        {
            return Host.Errno;
        }

        nodes.Renamed(oldDir, NodeTable.NameKey(oldName), newDir, NodeTable.NameKey(newName), (flags & Exchange) != 0);
        w.U64(moved.Ino);
        w.U64(replaced);
        return 0;
    }

    private int SetAttr(ref MessageReader r, ref MessageWriter w)
    {
        var node = Get(r.U64());
        var mask = (WireSetAttr)r.U32();
        uint mode = r.U32();
        int uid = r.I32();
        int gid = r.I32();
        long size = r.I64();
        var atime = new Host.TimeSpec { Seconds = r.I64(), Nanoseconds = r.I64() };
        var mtime = new Host.TimeSpec { Seconds = r.I64(), Nanoseconds = r.I64() };
        if (node is null)
        {
            return (int)Errno.EBADF;
        }

        if (roots[node.Root].ReadOnly)
        {
            return (int)Errno.EROFS;
        }

        byte* empty = stackalloc byte[1] { 0 };
        if ((mask & (WireSetAttr.Uid | WireSetAttr.Gid)) != 0)
        {
            int newUid = (mask & WireSetAttr.Uid) != 0 ? uid : -1;
            int newGid = (mask & WireSetAttr.Gid) != 0 ? gid : -1;
            if (Host.FchownAt(node.Fd, empty, newUid, newGid, Host.AT_EMPTY_PATH) != 0)
            {
                return Host.Errno;
            }
        }

        if ((mask & WireSetAttr.Mode) != 0)
        {
            if (node.Type == Host.S_IFLNK)
            {
                return (int)Errno.EOPNOTSUPP;
            }

            if (Host.FchmodAt2(node.Fd, empty, SafeMode(node.Type, mode), Host.AT_EMPTY_PATH) != 0)
            {
                return Host.Errno;
            }
        }

        if ((mask & WireSetAttr.Size) != 0)
        {
            if (node.Type == Host.S_IFDIR)
            {
                return (int)Errno.EISDIR;
            }

            if (node.Type != Host.S_IFREG || size < 0)
            {
                return (int)Errno.EINVAL;
            }

            int fd = ReopenByAlias(node, Host.O_WRONLY | Host.O_CLOEXEC | Host.O_NOFOLLOW | Host.O_NOCTTY | Host.O_NONBLOCK);
            if (fd < 0)
            {
                return -fd;
            }

            int result = Host.Ftruncate(fd, size);
            int error = Host.Errno;
            Host.Close(fd);
            if (result != 0)
            {
                return error;
            }
        }

        const WireSetAttr Times = WireSetAttr.AccessTime | WireSetAttr.ModifyTime | WireSetAttr.AccessTimeNow | WireSetAttr.ModifyTimeNow;
        if ((mask & Times) != 0)
        {
            const long UtimeNow = (1L << 30) - 1;
            Host.TimeSpec* times = stackalloc Host.TimeSpec[2];
            times[0] = (mask & WireSetAttr.AccessTimeNow) != 0 ? new Host.TimeSpec { Nanoseconds = UtimeNow }
                : (mask & WireSetAttr.AccessTime) != 0 ? atime : new Host.TimeSpec { Nanoseconds = Host.UTIME_OMIT };
            times[1] = (mask & WireSetAttr.ModifyTimeNow) != 0 ? new Host.TimeSpec { Nanoseconds = UtimeNow }
                : (mask & WireSetAttr.ModifyTime) != 0 ? mtime : new Host.TimeSpec { Nanoseconds = Host.UTIME_OMIT };
            if (Host.UtimensAt(node.Fd, empty, times, Host.AT_EMPTY_PATH | Host.AT_SYMLINK_NOFOLLOW) != 0)
            {
                return Host.Errno;
            }
        }

        int statErrno = StatFd(node.Fd, out var stat);
        if (statErrno == 0)
        {
            WireAttributes.From(stat).Write(ref w);
        }

        return statErrno;
    }
}
