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
internal sealed unsafe partial class GoferServer(ServedRoot[] roots, StartupCheck[] startupChecks, string confinementNote, long confinementTicks)
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
        w.I64(confinementTicks);
        w.String(confinementNote);
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
        // The runtime names threads through /proc/self/task/N/comm, which this thread's root
        // does not have: name it directly.
        fixed (byte* name = "gofer conn\0"u8)
        {
            Host.Prctl(15 /* PR_SET_NAME */, (ulong)name, 0, 0, 0);
        }

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
                nodes.ReleaseLeases(Leases);
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
            Op.WalkOpen => WalkOpen(ref r, ref w, out passFd),
            Op.WalkReadDir => WalkReadDir(ref r, ref w),
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

    /// <summary>The nodes the current request uses (one list per serving thread).</summary>
    [ThreadStatic]
    private static List<Node>? leases;

    private static List<Node> Leases => leases ??= [];

    /// <summary>The node with <paramref name="id"/>, kept open until the request is answered; null when unknown.</summary>
    private Node? Get(ulong id) => nodes.Acquire(id, Leases);

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

    private static int Stat(string path)
    {
        var bytes = System.Text.Encoding.UTF8.GetBytes(path + "\0");
        Host.Stat stat;
        fixed (byte* p = bytes)
        {
            return Host.Lstat(p, &stat) == 0 ? 0 : Host.Errno;
        }
    }

    /// <summary>The names in the calling thread's "/" (sorted).</summary>
    private static List<string> ListRoot()
    {
        var names = new List<string>();
        fixed (byte* root = "/\0"u8)
        {
            int fd = Host.Open(root, Host.O_RDONLY | Host.O_DIRECTORY | Host.O_CLOEXEC, 0);
            if (fd < 0)
            {
                names.Add($"({Host.ErrnoName(Host.Errno)})");
                return names;
            }

            byte* buffer = stackalloc byte[4096];
            nint read;
            while ((read = Host.GetDents64(fd, buffer, 4096)) > 0)
            {
                for (nint offset = 0; offset < read;)
                {
                    ushort length = *(ushort*)(buffer + offset + 16);
                    var name = new ReadOnlySpan<byte>(buffer + offset + 19, length - 19);
                    string text = System.Text.Encoding.UTF8.GetString(name[..name.IndexOf((byte)0)]);
                    if (text is not "." and not "..")
                    {
                        names.Add(text);
                    }

                    offset += length;
                }
            }

            Host.Close(fd);
        }

        names.Sort(StringComparer.Ordinal);
        return names;
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
        // Outside the allow-list: ENOSYS; signals to another process: EPERM (signal 0 only probes).
        probes.Add(("kill(1, 0)", Host.RawSyscall(62, 1, 0, 0) == 0 ? 0 : Host.Errno));
        probes.Add(("tgkill(1, 1, 0)", Host.RawSyscall(234, 1, 1, 0) == 0 ? 0 : Host.Errno));
        probes.Add(("truncate(path)", Host.RawSyscall(76, 0, 0, 0) == 0 ? 0 : Host.Errno));
        byte* relative = stackalloc byte[] { (byte)'.', (byte)'.', 0 };
        if (roots.Length > 0 && roots[0].Fd >= 0)
        {
            var how = new Host.OpenHow { Flags = (ulong)(Host.O_PATH | Host.O_CLOEXEC), Resolve = Host.ResolveConfined };
            int fd = Host.OpenAt2(roots[0].Fd, relative, &how);
            probes.Add(("openat2(root, \"..\")", fd >= 0 ? 0 : Host.Errno));
            Host.CloseQuietly(fd);
        }

        // What this (serving) thread sees: no host file outside the runtime's directories, a
        // read-only root, the attach roots still reachable through their descriptors.
        probes.Add(($"ls /: {string.Join(' ', ListRoot())}", 0));
        probes.Add(("stat(/etc/passwd)", Stat("/etc/passwd")));
        probes.Add(("stat(/proc/self)", Stat("/proc/self")));
        probes.Add(("stat(/tmp)", Stat("/tmp")));
        fixed (byte* directory = "/appkernel-probe\0"u8)
        {
            probes.Add(("mkdir(/appkernel-probe)", Host.MkdirAt(Host.AT_FDCWD, directory, 0x1c0) == 0 ? 0 : Host.Errno));
        }

        byte* dot = stackalloc byte[] { (byte)'.', 0 };
        for (int i = 0; i < roots.Length; i++)
        {
            var how = new Host.OpenHow { Flags = (ulong)(Host.O_RDONLY | Host.O_DIRECTORY | Host.O_CLOEXEC), Resolve = Host.ResolveConfined };
            int fd = roots[i].Fd < 0 ? -1 : Host.OpenAt2(roots[i].Fd, dot, &how);
            probes.Add(($"open attach root {i}", fd >= 0 ? 0 : roots[i].Fd < 0 ? (int)Errno.EBADF : Host.Errno));
            Host.CloseQuietly(fd);
        }

        var (effective, bounding) = Confinement.ReadCapabilities();
        probes.Add(($"capabilities effective={effective:x} bounding={bounding:x}", 0));
        probes.Add(("no_new_privs", Host.Prctl(39 /* PR_GET_NO_NEW_PRIVS */, 0, 0, 0, 0) == 1 ? 0 : (int)Errno.EPERM));

        w.U32((uint)probes.Count);
        foreach (var (name, errno) in probes)
        {
            w.String(name);
            w.I32(errno);
        }

        return 0;
    }
}
