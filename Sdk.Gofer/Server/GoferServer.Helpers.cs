using System.Buffers.Binary;
using AppKernel.Gofer.Native;
using AppKernel.Gofer.Protocol;

namespace AppKernel.Gofer.Server;

/// <summary>Name checks, confined opens, node bookkeeping.</summary>
internal sealed unsafe partial class GoferServer
{
    /// <summary>
    /// Checks a name is one path component and copies it NUL-terminated into <paramref name="path"/>
    /// (Wire.MaxName + 1 bytes). Empty, ".", "..", '/' and NUL are refused.
    /// </summary>
    internal static int CheckName(ReadOnlySpan<byte> name, byte* path)
    {
        if (name.Length == 0 || name.SequenceEqual("."u8) || name.SequenceEqual(".."u8) ||
            name.IndexOf((byte)'/') >= 0 || name.IndexOf((byte)0) >= 0)
        {
            return (int)Errno.EINVAL;
        }

        if (name.Length > Wire.MaxName)
        {
            return (int)Errno.ENAMETOOLONG;
        }

        name.CopyTo(new Span<byte>(path, Wire.MaxName));
        path[name.Length] = 0;
        return 0;
    }

    private static int? CheckDirectory(Node? dir) =>
        dir is null ? (int)Errno.EBADF : !dir.IsDirectory ? (int)Errno.ENOTDIR : null;

    private int? CheckMutableDirectory(Node? dir) =>
        CheckDirectory(dir) ?? (roots[dir!.Root].ReadOnly ? (int)Errno.EROFS : null);

    /// <summary>Permission bits as the Gofer applies them: never set-user-ID, never set-group-ID on a non-directory.</summary>
    private static uint SafeMode(uint type, uint mode)
    {
        mode &= 0xFFF & ~Host.S_ISUID;
        if (type != Host.S_IFDIR)
        {
            mode &= ~Host.S_ISGID;
        }

        return mode;
    }

    /// <summary>openat2 under <see cref="Host.ResolveConfined"/>; returns the descriptor or minus the errno.</summary>
    private static int OpenConfined(int dirFd, byte* path, int flags, uint mode)
    {
        var how = new Host.OpenHow { Flags = (ulong)flags, Mode = (flags & Host.O_CREAT) != 0 ? mode : 0, Resolve = Host.ResolveConfined };
        while (true)
        {
            int fd = Host.OpenAt2(dirFd, path, &how);
            if (fd >= 0)
            {
                return fd;
            }

            int errno = Host.Errno;
            if (errno != Host.EINTR && errno != Host.EAGAIN)
            {
                return -errno;
            }
        }
    }

    /// <summary>Opens a non-directory through one of its names, checking it is still the same inode.</summary>
    private int ReopenByAlias(Node node, int flags)
    {
        byte* path = stackalloc byte[Wire.MaxName + 1];
        int result = -(int)Errno.ENOENT;
        foreach (var alias in nodes.AliasesOf(node, Leases))
        {
            int length = System.Text.Encoding.Latin1.GetBytes(alias.Name, new Span<byte>(path, Wire.MaxName));
            path[length] = 0;
            int fd = OpenConfined(alias.Parent.Fd, path, flags, 0);
            if (fd < 0)
            {
                result = fd;
                continue;
            }

            if (StatFd(fd, out var stat) == 0 && stat.Ino == node.Ino && stat.Dev == node.Dev)
            {
                return fd;
            }

            Host.Close(fd);
            result = -(int)Errno.ESTALE;
        }

        return result;
    }

    private int AddNode(int fd, int root, Node? parent, string? name, ref MessageWriter w)
    {
        int errno = StatFd(fd, out var stat);
        if (errno != 0)
        {
            Host.Close(fd);
            return errno;
        }

        var node = nodes.Add(fd, root, stat, parent, name);
        w.U64(node.Id);
        WireAttributes.From(stat).Write(ref w);
        return 0;
    }

    /// <summary>After creating <paramref name="path"/> in <paramref name="dir"/>: owner, node, reply.</summary>
    private int AddCreated(Node dir, ReadOnlySpan<byte> name, byte* path, int uid, int gid, ref MessageWriter w, int expectFd)
    {
        int fd = OpenConfined(dir.Fd, path, Host.O_PATH | Host.O_NOFOLLOW | Host.O_CLOEXEC, 0);
        if (fd < 0)
        {
            return -fd;
        }

        if (expectFd >= 0)
        {
            if (StatFd(fd, out var a) != 0 || StatFd(expectFd, out var b) != 0 || a.Ino != b.Ino || a.Dev != b.Dev)
            {
                Host.Close(fd);
                return (int)Errno.ESTALE;
            }
        }

        // Files belong to the Gofer's own credentials; a privileged Gofer gives them the sandbox owner.
        if (Host.GetEffectiveUid() == 0 && (uid >= 0 || gid >= 0))
        {
            byte* empty = stackalloc byte[1] { 0 };
            Host.FchownAt(fd, empty, uid, gid, Host.AT_EMPTY_PATH);
        }

        return AddNode(fd, dir.Root, dir, NodeTable.NameKey(name), ref w);
    }

    private static int StatFd(int fd, out Host.Statx stat)
    {
        byte* empty = stackalloc byte[1] { 0 };
        return StatAt(fd, empty, out stat, Host.AT_EMPTY_PATH);
    }

    private static int StatAt(int dirFd, byte* path, out Host.Statx stat, int extraFlags = 0)
    {
        stat = default;
        fixed (Host.Statx* buffer = &stat)
        {
            if (Host.StatxCall(dirFd, path, extraFlags | Host.AT_SYMLINK_NOFOLLOW, Host.STATX_BASIC_STATS | Host.STATX_BTIME, buffer) != 0)
            {
                return Host.Errno;
            }

            return 0;
        }
    }

    private static void PatchU32(ref MessageWriter w, int at, uint value) =>
        BinaryPrimitives.WriteUInt32LittleEndian(w.Buffer.Slice(at, 4), value);
}
