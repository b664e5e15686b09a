using System.Buffers.Binary;
using AppKernel.Gofer.Native;
using AppKernel.Gofer.Protocol;

namespace AppKernel.Gofer.Server;

/// <summary>One attach root of the running Gofer.</summary>
/// <param name="Path">The host path given on the command line.</param>
/// <param name="ReadOnly">Whether mutations are refused with EROFS.</param>
/// <param name="Fd">The O_PATH descriptor opened at start-up (-1 when opening failed).</param>
internal sealed record ServedRoot(string Path, bool ReadOnly, int Fd);

/// <summary>The outcome of one confinement step at start-up (0, or the errno), reported by <see cref="Op.SelfCheck"/>.</summary>
internal sealed record StartupCheck(string Name, int Errno);

/// <summary>
/// Serves requests: one thread per connection, each blocked in recvmsg on its own socket
/// and answering in order. All host access goes through <see cref="Node"/> descriptors:
/// names are single components, validated, and opened with openat2 under
/// <see cref="Host.ResolveConfined"/>.
/// </summary>
internal sealed unsafe class GoferServer(ServedRoot[] roots, StartupCheck[] startupChecks)
{
    // Created once the handshake is answered: its dictionaries cost JIT time the Gofer's
    // time-to-ready need not include.
    private NodeTable nodes = null!;
    private int connections;

    /// <summary>Serves the first connection on the calling thread; returns when the client closes it.</summary>
    /// <param name="socket">The inherited socket.</param>
    /// <param name="startupError">Why start-up failed, answered to the version request, or null.</param>
    /// <param name="mainEntered">When Main began (Stopwatch timestamp), reported in the handshake.</param>
    /// <param name="startData">Called once the handshake succeeded, to start serving the other inherited sockets.</param>
    public void ServeInitial(int socket, string? startupError, long mainEntered, Action? startData)
    {
        var receive = new byte[Wire.MaxMessage];
        var send = new byte[Wire.MaxMessage];
        int length = SeqPacket.Receive(socket, receive, out int fd);
        Host.CloseQuietly(fd);
        if (length <= 0)
        {
            return;
        }

        var request = new MessageReader(receive.AsSpan(0, length));
        if (request.Op != Op.Version)
        {
            SendError(socket, send, request.Tag, request.Op, (int)Errno.EPROTO, "the first request must be a version handshake");
            return;
        }

        uint version = request.U32();
        if (version != Wire.Version)
        {
            SendError(socket, send, request.Tag, request.Op, (int)Errno.EPROTONOSUPPORT, $"gofer speaks protocol {Wire.Version}, client {version}");
            return;
        }

        if (startupError is not null)
        {
            SendError(socket, send, request.Tag, request.Op, (int)Errno.EIO, startupError);
            return;
        }

        var w = new MessageWriter(send, request.Tag, Op.Version);
        w.U32(Wire.Version);
        w.U32((uint)roots.Length);
        foreach (var root in roots)
        {
            w.U8(root.ReadOnly ? (byte)1 : (byte)0);
        }

        w.I64(mainEntered);
        w.I64(System.Diagnostics.Stopwatch.GetTimestamp());
        if (SeqPacket.Send(socket, w.Finish()) != 0)
        {
            return;
        }

        nodes = new NodeTable();

        startData?.Invoke();

        Serve(socket, receive, send);
    }

    /// <summary>Serves <paramref name="socket"/> on a new thread until the client closes it.</summary>
    public void StartServing(int socket)
    {
        Interlocked.Increment(ref connections);
        var thread = new Thread(() => ServeAdditional(socket), 256 * 1024) { IsBackground = true, Name = "gofer connection" };
        thread.Start();
    }

    private void ServeAdditional(int socket)
    {
        try
        {
            Serve(socket, new byte[Wire.MaxMessage], new byte[Wire.MaxMessage]);
        }
        finally
        {
            Host.Close(socket);
            Interlocked.Decrement(ref connections);
        }
    }

    private void Serve(int socket, byte[] receive, byte[] send)
    {
        while (true)
        {
            int length;
            int fd;
            try
            {
                length = SeqPacket.Receive(socket, receive, out fd);
            }
            catch (ProtocolException)
            {
                return;
            }

            if (length <= 0)
            {
                return; // The client closed the connection (or it failed): nothing more to serve.
            }

            MessageReader request;
            try
            {
                request = new MessageReader(receive.AsSpan(0, length));
            }
            catch (ProtocolException)
            {
                Host.CloseQuietly(fd);
                return;
            }

            int passFd = -1;
            int sendResult;
            int owned = fd;
            fd = -1; // Dispatch owns a received descriptor.
            try
            {
                var response = new MessageWriter(send, request.Tag, request.Op);
                int errno = Dispatch(ref request, ref response, owned, out passFd);
                if (errno == 0 && !request.AtEnd)
                {
                    errno = (int)Errno.EINVAL;
                    Host.CloseQuietly(passFd);
                    passFd = -1;
                }

                if (errno != 0)
                {
                    sendResult = SendError(socket, send, request.Tag, request.Op, errno, null);
                }
                else
                {
                    if (passFd >= 0)
                    {
                        response.SetFlags(Wire.FlagHasFd);
                    }

                    sendResult = SeqPacket.Send(socket, response.Finish(), passFd);
                }
            }
            catch (ProtocolException e)
            {
                Host.CloseQuietly(passFd);
                passFd = -1;
                sendResult = SendError(socket, send, request.Tag, request.Op, (int)Errno.EINVAL, e.Message);
            }
            finally
            {
                Host.CloseQuietly(passFd);
            }

            if (sendResult != 0)
            {
                return;
            }
        }
    }

    private static int SendError(int socket, byte[] send, uint tag, Op op, int errno, string? detail)
    {
        var w = new MessageWriter(send, tag, op, 0, errno);
        if (detail is not null)
        {
            var bytes = System.Text.Encoding.UTF8.GetBytes(detail);
            foreach (var b in bytes.AsSpan(0, Math.Min(bytes.Length, 1024)))
            {
                w.U8(b);
            }
        }

        return SeqPacket.Send(socket, w.Finish());
    }

    private int Dispatch(ref MessageReader r, ref MessageWriter w, int receivedFd, out int passFd)
    {
        passFd = -1;
        if (receivedFd >= 0 && r.Op != Op.Connect)
        {
            Host.Close(receivedFd);
            return (int)Errno.EINVAL;
        }

        return r.Op switch
        {
            Op.Connect => Connect(receivedFd),
            Op.Release => Release(ref r),
            Op.SelfCheck => SelfCheck(ref w),
            Op.Attach => Attach(ref r, ref w),
            Op.Walk => Walk(ref r, ref w),
            Op.GetAttr => GetAttr(ref r, ref w),
            Op.Open => Open(ref r, ref w, out passFd),
            Op.ReadDir => ReadDir(ref r, ref w),
            Op.ReadLink => ReadLink(ref r, ref w),
            Op.StatFs => StatFs(ref r, ref w),
            Op.Create => Create(ref r, ref w, out passFd),
            Op.Mkdir => Mkdir(ref r, ref w),
            Op.Mknod => Mknod(ref r, ref w),
            Op.Symlink => Symlink(ref r, ref w),
            Op.Link => Link(ref r, ref w),
            Op.Unlink => Unlink(ref r, ref w),
            Op.Rename => Rename(ref r, ref w),
            Op.SetAttr => SetAttr(ref r, ref w),
            _ => (int)Errno.ENOSYS,
        };
    }

    // ---- Control -------------------------------------------------------------------------

    private int Connect(int socket)
    {
        if (socket < 0)
        {
            return (int)Errno.EBADF;
        }

        int domain = 0, type = 0;
        uint size = sizeof(int);
        if (Host.GetSockOpt(socket, Host.SOL_SOCKET, Host.SO_DOMAIN, &domain, &size) != 0 ||
            Host.GetSockOpt(socket, Host.SOL_SOCKET, Host.SO_TYPE, &type, &size) != 0 ||
            domain != Host.AF_UNIX || type != Host.SOCK_SEQPACKET)
        {
            Host.Close(socket);
            return (int)Errno.EINVAL;
        }

        if (Volatile.Read(ref connections) >= 256)
        {
            Host.Close(socket);
            return (int)Errno.EMFILE;
        }

        StartServing(socket);
        return 0;
    }

    private int Release(ref MessageReader r)
    {
        uint count = r.U32();
        if (count > Wire.MaxReleaseBatch)
        {
            return (int)Errno.EINVAL;
        }

        for (uint i = 0; i < count; i++)
        {
            nodes.Release(r.U64());
        }

        return 0;
    }

    private int SelfCheck(ref MessageWriter w)
    {
        var probes = new List<(string Name, int Errno)>();
        foreach (var check in startupChecks)
        {
            probes.Add((check.Name, check.Errno));
        }

        int s = Host.Socket(2 /* AF_INET */, 1 /* SOCK_STREAM */, 0);
        probes.Add(("socket(AF_INET)", s >= 0 ? 0 : Host.Errno));
        Host.CloseQuietly(s);
        s = Host.Socket(10 /* AF_INET6 */, 2 /* SOCK_DGRAM */, 0);
        probes.Add(("socket(AF_INET6)", s >= 0 ? 0 : Host.Errno));
        Host.CloseQuietly(s);
        s = Host.Socket(16 /* AF_NETLINK */, 3 /* SOCK_RAW */, 0);
        probes.Add(("socket(AF_NETLINK)", s >= 0 ? 0 : Host.Errno));
        Host.CloseQuietly(s);
        byte* path = stackalloc byte[] { (byte)'/', (byte)'n', (byte)'o', (byte)'n', (byte)'e', 0 };
        byte** argv = stackalloc byte*[] { path, null };
        probes.Add(("execve", Host.Execve(path, argv, argv + 1) == 0 ? 0 : Host.Errno));
        probes.Add(("unshare(CLONE_NEWNS)", Host.Unshare(0x00020000) == 0 ? 0 : Host.Errno));
        byte* relative = stackalloc byte[] { (byte)'.', (byte)'.', 0 };
        if (roots.Length > 0 && roots[0].Fd >= 0)
        {
            var how = new Host.OpenHow { Flags = (ulong)(Host.O_PATH | Host.O_CLOEXEC), Resolve = Host.ResolveConfined };
            int fd = Host.OpenAt2(roots[0].Fd, relative, &how);
            probes.Add(("openat2(root, \"..\")", fd >= 0 ? 0 : Host.Errno));
            Host.CloseQuietly(fd);
        }

        w.U32((uint)probes.Count);
        foreach (var (name, errno) in probes)
        {
            w.String(name);
            w.I32(errno);
        }

        return 0;
    }

    // ---- Lookup and reading ---------------------------------------------------------------

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
        var dir = nodes.Get(r.U64());
        var name = r.StringBytes();
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

        return AddNode(fd, dir.Root, dir, NodeTable.NameKey(name), ref w);
    }

    private int GetAttr(ref MessageReader r, ref MessageWriter w)
    {
        var node = nodes.Get(r.U64());
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
        passFd = -1;
        var node = nodes.Get(r.U64());
        int flags = (int)r.U32();
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
        var dir = nodes.Get(r.U64());
        long cookie = r.I64();
        int maxBytes = (int)Math.Min(r.U32(), Wire.MaxReadDirBytes);
        int? check = CheckDirectory(dir);
        if (check is { } failed)
        {
            return failed;
        }

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

            maxBytes = Math.Max(maxBytes, 1024);
            byte* buffer = stackalloc byte[maxBytes];
            byte* name = stackalloc byte[Wire.MaxName + 1];
            var countAt = w.Length;
            w.U32(0);
            uint count = 0;
            while (count == 0)
            {
                nint read = Host.GetDents64(fd, buffer, (nuint)maxBytes);
                if (read < 0)
                {
                    return Host.Errno;
                }

                if (read == 0)
                {
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

                    if (w.Remaining < 8 + 8 + 1 + 2 + entryName.Length)
                    {
                        offset = (int)read; // The client resumes from the last entry sent.
                        break;
                    }

                    if (type == 0 /* DT_UNKNOWN */)
                    {
                        entryName.CopyTo(new Span<byte>(name, Wire.MaxName));
                        name[entryName.Length] = 0;
                        Host.Statx stat;
                        if (Host.StatxCall(fd, name, Host.AT_SYMLINK_NOFOLLOW, Host.STATX_BASIC_STATS, &stat) == 0)
                        {
                            type = (byte)(stat.Mode >> 12);
                        }
                    }

                    w.U64(ino);
                    w.I64(next);
                    w.U8(type);
                    w.Bytes(entryName);
                    count++;
                }
            }

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
        var node = nodes.Get(r.U64());
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
        var node = nodes.Get(r.U64());
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

    // ---- Mutations ----------------------------------------------------------------------

    private int Create(ref MessageReader r, ref MessageWriter w, out int passFd)
    {
        passFd = -1;
        var dir = nodes.Get(r.U64());
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
        var dir = nodes.Get(r.U64());
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
        var dir = nodes.Get(r.U64());
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
        var dir = nodes.Get(r.U64());
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
        var dir = nodes.Get(r.U64());
        var name = r.StringBytes();
        var target = nodes.Get(r.U64());
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
            foreach (var alias in nodes.AliasesOf(target))
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
        var dir = nodes.Get(r.U64());
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
        var oldDir = nodes.Get(r.U64());
        var oldName = r.StringBytes();
        var newDir = nodes.Get(r.U64());
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
        var node = nodes.Get(r.U64());
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

    // ---- Helpers ------------------------------------------------------------------------

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
        foreach (var alias in nodes.AliasesOf(node))
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
