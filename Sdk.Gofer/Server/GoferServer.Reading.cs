using System.Buffers.Binary;
using AppKernel.Gofer.Native;
using AppKernel.Gofer.Protocol;

namespace AppKernel.Gofer.Server;

/// <summary>Requests that read: attach, walk, getattr, open, readdir, readlink, statfs.</summary>
internal sealed unsafe partial class GoferServer
{
    private int Attach(ref MessageReader r, ref MessageWriter w)
    {
        uint index = r.U32();
        if (index >= (uint)roots.Length)
        {
            return (int)Errno.EINVAL;
        }

        var root = roots[(int)index];
        byte* dot = stackalloc byte[] { (byte)'.', 0 };
        var how = new Host.OpenHow { Flags = (ulong)(Host.O_PATH | Host.O_DIRECTORY | Host.O_CLOEXEC), Resolve = Host.ResolveConfined };
        int fd = Host.OpenAt2(root.Fd, dot, &how);
        if (fd < 0)
        {
            return Host.Errno;
        }

        return AddNode(fd, (int)index, null, null, ref w);
    }

    private int Walk(ref MessageReader r, ref MessageWriter w)
    {
        var dir = Get(r.U64());
        var name = r.StringBytes();
        return WalkTo(dir, name, ref w, out _);
    }

    /// <summary>Walks one component from <paramref name="dir"/>, answers the new node and its attributes, and leases it for this request.</summary>
    private int WalkTo(Node? dir, ReadOnlySpan<byte> name, ref MessageWriter w, out Node? node)
    {
        node = null;
        byte* path = stackalloc byte[Wire.MaxName + 1];
        int errno = CheckDirectory(dir) ?? CheckName(name, path);
        if (errno != 0)
        {
            return errno;
        }

        int fd = OpenConfined(dir!.Fd, path, Host.O_PATH | Host.O_NOFOLLOW | Host.O_CLOEXEC, 0);
        if (fd < 0)
        {
            return -fd;
        }

        int mark = w.Length;
        int added = AddNode(fd, dir.Root, dir, NodeTable.NameKey(name), ref w);
        if (added == 0)
        {
            node = Get(BinaryPrimitives.ReadUInt64LittleEndian(w.Buffer[mark..]));
        }

        return added;
    }

    private int GetAttr(ref MessageReader r, ref MessageWriter w)
    {
        var node = Get(r.U64());
        if (node is null)
        {
            return (int)Errno.EBADF;
        }

        int errno = StatFd(node.Fd, out var stat);
        if (errno == 0)
        {
            WireAttributes.From(stat).Write(ref w);
        }

        return errno;
    }

    private int Open(ref MessageReader r, ref MessageWriter w, out int passFd)
    {
        var node = Get(r.U64());
        int flags = (int)r.U32();
        return OpenNode(node, flags, ref w, out passFd);
    }

    /// <summary>Opens <paramref name="node"/> for the client: its attributes in the answer, the descriptor to pass.</summary>
    private int OpenNode(Node? node, int flags, ref MessageWriter w, out int passFd)
    {
        passFd = -1;
        if (node is null)
        {
            return (int)Errno.EBADF;
        }

        int access = flags & Host.O_ACCMODE;
        if (access == Host.O_ACCMODE)
        {
            return (int)Errno.EINVAL;
        }

        bool writes = access != Host.O_RDONLY || (flags & Host.O_TRUNC) != 0;
        if (writes && roots[node.Root].ReadOnly)
        {
            return (int)Errno.EROFS;
        }

        // O_APPEND is the client's business (it writes with pwrite at the end it computes);
        // O_DIRECT and O_NOATIME are not passed on. Whatever else the client asked is dropped.
        int hostFlags = access | (flags & (Host.O_TRUNC | Host.O_NONBLOCK | Host.O_SYNC | Host.O_DSYNC)) |
            Host.O_CLOEXEC | Host.O_NOFOLLOW | Host.O_NOCTTY;
        int fd;
        switch (node.Type)
        {
            case Host.S_IFDIR:
                if (writes)
                {
                    return (int)Errno.EISDIR;
                }

                byte* dot = stackalloc byte[] { (byte)'.', 0 };
                fd = OpenConfined(node.Fd, dot, hostFlags | Host.O_DIRECTORY, 0);
                break;
            case Host.S_IFREG:
                fd = ReopenByAlias(node, hostFlags);
                break;
            case Host.S_IFIFO:
                // A FIFO opened without O_NONBLOCK would block a Gofer thread until a peer comes.
                if ((flags & Host.O_NONBLOCK) == 0)
                {
                    return (int)Errno.ENXIO;
                }

                fd = ReopenByAlias(node, hostFlags);
                break;
            case Host.S_IFLNK:
                return (int)Errno.ELOOP;
            case Host.S_IFSOCK:
                return (int)Errno.ENXIO;
            default:
                return (int)Errno.EACCES; // Host devices are never handed to the sandbox.
        }

        if (fd < 0)
        {
            return -fd;
        }

        int errno = StatFd(fd, out var stat);
        if (errno != 0)
        {
            Host.Close(fd);
            return errno;
        }

        WireAttributes.From(stat).Write(ref w);
        passFd = fd;
        return 0;
    }

    private int ReadDir(ref MessageReader r, ref MessageWriter w)
    {
        var dir = Get(r.U64());
        long cookie = r.I64();
        int maxBytes = (int)Math.Min(r.U32(), Wire.MaxReadDirBytes);
        uint flags = r.U32();
        return ReadDirOf(dir, cookie, maxBytes, flags, ref w);
    }

    /// <summary>Walk + Open in one round trip: the walk's answer, then the open's status and answer.</summary>
    private int WalkOpen(ref MessageReader r, ref MessageWriter w, out int passFd)
    {
        passFd = -1;
        var parent = Get(r.U64());
        var name = r.StringBytes();
        int flags = (int)r.U32();
        int errno = WalkTo(parent, name, ref w, out var node);
        if (errno != 0)
        {
            return errno;
        }

        // The node now belongs to the client whatever the open does: its status travels in the payload.
        int statusAt = w.Length;
        w.I32(0);
        int openErrno = OpenNode(node, flags, ref w, out passFd);
        if (openErrno != 0)
        {
            PatchU32(ref w, statusAt, (uint)openErrno);
        }

        return 0;
    }

    /// <summary>Walk + ReadDir in one round trip: the walk's answer, then the listing's status and entries.</summary>
    private int WalkReadDir(ref MessageReader r, ref MessageWriter w)
    {
        var parent = Get(r.U64());
        var name = r.StringBytes();
        long cookie = r.I64();
        int maxBytes = (int)Math.Min(r.U32(), Wire.MaxReadDirBytes);
        uint flags = r.U32();
        int errno = WalkTo(parent, name, ref w, out var node);
        if (errno != 0)
        {
            return errno;
        }

        int statusAt = w.Length;
        w.I32(0);
        int mark = w.Length;
        int listErrno = ReadDirOf(node, cookie, maxBytes, flags, ref w);
        if (listErrno != 0)
        {
            w.Truncate(mark);
            PatchU32(ref w, statusAt, (uint)listErrno);
        }

        return 0;
    }

    /// <summary>
    /// Lists <paramref name="dir"/> from host <paramref name="cookie"/> into the answer: as many
    /// entries as fit, then whether the end of the directory was reached (so that the client
    /// needs no further round trip to learn it). With <see cref="Wire.ReadDirAttributes"/>, each
    /// entry carries its attributes (statx relative to the directory, not following symlinks).
    /// </summary>
    private int ReadDirOf(Node? dir, long cookie, int maxBytes, uint flags, ref MessageWriter w)
    {
        int? check = CheckDirectory(dir);
        if (check is { } failed)
        {
            return failed;
        }

        bool withAttributes = (flags & Wire.ReadDirAttributes) != 0;
        byte* dot = stackalloc byte[] { (byte)'.', 0 };
        int fd = OpenConfined(dir!.Fd, dot, Host.O_RDONLY | Host.O_DIRECTORY | Host.O_CLOEXEC, 0);
        if (fd < 0)
        {
            return -fd;
        }

        try
        {
            if (cookie != 0 && Host.Lseek(fd, cookie, Host.SEEK_SET) < 0)
            {
                return Host.Errno;
            }

            ulong directoryDev = 0;
            if (withAttributes && StatFd(fd, out var directoryStat) == 0)
            {
                directoryDev = directoryStat.Dev;
            }

            maxBytes = Math.Max(maxBytes, 1024);
            byte* buffer = stackalloc byte[maxBytes];
            byte* name = stackalloc byte[Wire.MaxName + 1];
            var countAt = w.Length;
            w.U32(0);
            uint count = 0;
            bool end = false;
            bool full = false;
            int entrySize = 8 + 8 + 1 + 2 + (withAttributes ? 1 + WireAttributes.Size : 0) + 1 /* the end mark */;
            while (!full)
            {
                nint read = Host.GetDents64(fd, buffer, (nuint)maxBytes);
                if (read < 0)
                {
                    return Host.Errno;
                }

                if (read == 0)
                {
                    end = true;
                    break;
                }

                for (int offset = 0; offset < read;)
                {
                    // struct linux_dirent64: u64 d_ino, i64 d_off, u16 d_reclen, u8 d_type, char d_name[].
                    byte* entry = buffer + offset;
                    ulong ino = *(ulong*)entry;
                    long next = *(long*)(entry + 8);
                    ushort recordLength = *(ushort*)(entry + 16);
                    byte type = entry[18];
                    var entryName = new ReadOnlySpan<byte>(entry + 19, recordLength - 19);
                    entryName = entryName[..entryName.IndexOf((byte)0)];
                    offset += recordLength;
                    if (entryName.SequenceEqual("."u8) || entryName.SequenceEqual(".."u8))
                    {
                        continue;
                    }

                    if (w.Remaining < entrySize + entryName.Length)
                    {
                        full = true; // The client resumes from the last entry sent.
                        break;
                    }

                    bool haveStat = false;
                    Host.Statx stat = default;
                    if (type == 0 /* DT_UNKNOWN */ || withAttributes)
                    {
                        entryName.CopyTo(new Span<byte>(name, Wire.MaxName));
                        name[entryName.Length] = 0;
                        if (Host.StatxCall(fd, name, Host.AT_SYMLINK_NOFOLLOW, Host.STATX_BASIC_STATS | Host.STATX_BTIME, &stat) == 0)
                        {
                            haveStat = true;
                            type = (byte)(stat.Mode >> 12);
                        }
                    }

                    w.U64(ino);
                    w.I64(next);
                    w.U8(type);
                    w.Bytes(entryName);
                    if (withAttributes)
                    {
                        // Attributes only when the name still names the listed inode (it may have been
                        // replaced since) on the directory's filesystem (a mount point shows the
                        // mounted root: the client walks it and learns it is one).
                        bool matches = haveStat && stat.Ino == ino && stat.Dev == directoryDev;
                        w.U8(matches ? (byte)1 : (byte)0);
                        if (matches)
                        {
                            WireAttributes.From(stat).Write(ref w);
                        }
                    }

                    count++;
                }
            }

            w.U8(end ? (byte)1 : (byte)0);
            PatchU32(ref w, countAt, count);
            return 0;
        }
        finally
        {
            Host.Close(fd);
        }
    }

    private int ReadLink(ref MessageReader r, ref MessageWriter w)
    {
        var node = Get(r.U64());
        if (node is null)
        {
            return (int)Errno.EBADF;
        }

        if (node.Type != Host.S_IFLNK)
        {
            return (int)Errno.EINVAL;
        }

        byte* empty = stackalloc byte[1] { 0 };
        byte* buffer = stackalloc byte[Wire.MaxPath + 1];
        nint length = Host.ReadLinkAt(node.Fd, empty, buffer, Wire.MaxPath + 1);
        if (length < 0)
        {
            return Host.Errno;
        }

        if (length > Wire.MaxPath)
        {
            return (int)Errno.ENAMETOOLONG;
        }

        w.Bytes(new ReadOnlySpan<byte>(buffer, (int)length));
        return 0;
    }

    private int StatFs(ref MessageReader r, ref MessageWriter w)
    {
        var node = Get(r.U64());
        if (node is null)
        {
            return (int)Errno.EBADF;
        }

        Host.StatFs stat;
        if (Host.Fstatfs(node.Fd, &stat) != 0)
        {
            return Host.Errno;
        }

        w.I64(stat.Type);
        w.I64(stat.BlockSize);
        w.I64((long)stat.Blocks);
        w.I64((long)stat.FreeBlocks);
        w.I64((long)stat.AvailableBlocks);
        w.I64((long)stat.Files);
        w.I64((long)stat.FreeFiles);
        w.I64(stat.NameLength);
        return 0;
    }
}
