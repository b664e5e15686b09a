using System.Buffers.Binary;
using System.Net;
using AppKernel.Networking;
using AppKernel.Sentry.Native;
using AppKernel.Syscalls;
using AppKernel.Vfs;
using static AppKernel.Sentry.Net.SocketConstants;

namespace AppKernel.Sentry.Net;

/// <summary>
/// An AF_INET/AF_INET6 TCP or UDP socket of network mode host: a host socket the Sentry owns
/// (non-blocking, close-on-exec; the program only sees its own fd for it). Destinations and
/// bound ports are checked against the <see cref="NetworkPolicy"/> before the host call;
/// refusals are EACCES. Everything else is the host kernel's: its errno values, its readiness
/// (watched by the <see cref="Vfs.HostPoller"/> and asked with poll), its options (those an
/// unprivileged program may set; the rest ENOPROTOOPT or EPERM). SO_RCVTIMEO and SO_SNDTIMEO are
/// kept here: the socket layer does the waiting.
/// </summary>
internal sealed unsafe class HostSocket : IKernelSocket
{
    private const int MaxAddress = 128;
    private const int MSG_FASTOPEN = 0x20000000;

    /// <summary>Flags passed on to the host's send and recvmsg; the layer owns the rest.</summary>
    private const int SendFlags = MSG_OOB | MSG_DONTROUTE | MSG_EOR | MSG_CONFIRM | MSG_MORE | MSG_FASTOPEN;
    private const int ReceiveFlags = MSG_OOB | MSG_PEEK | MSG_TRUNC;

    private readonly HostStack stack;
    private readonly int fd;
    private readonly SocketInode inode;
    private int released;

    // What the sandbox's own loopback traffic is matched against (HostStack.MayReach).
    private volatile bool listening;
    private volatile int localPort;
    private volatile IPAddress? localAddress;

    private HostSocket(HostStack stack, int fd, int family, int type, int protocol)
    {
        this.stack = stack;
        this.fd = fd;
        Family = family;
        Type = type;
        Protocol = protocol;
        var creator = SentrySocket.CurrentCredentials();
        inode = new SocketInode(creator.Uid, creator.Gid);
        stack.Add(this);
        stack.Poller.Watch(fd, Waiters);
    }

    public static HostSocket Create(HostStack stack, int family, int type, int protocol)
    {
        int fd = LibC.Socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, protocol);
        if (fd < 0)
        {
            throw HostErrno();
        }

        return new HostSocket(stack, fd, family, type, protocol);
    }

    public int Family { get; }

    public int Type { get; }

    public int Protocol { get; }

    public WaitQueue Waiters { get; } = new();

    WaitQueue? IFileOperations.Waiters => Waiters;

    public IInode? Inode => inode;

    public bool IsStream => true;

    private long receiveTimeout, sendTimeout;

    public long ReceiveTimeout => receiveTimeout;

    public long SendTimeout => sendTimeout;

    /// <summary>Whether this socket would take a connect or datagram sent to <paramref name="address"/>:<paramref name="port"/> on the loopback.</summary>
    public bool Receives(IPAddress address, int port)
    {
        if (localPort != port || (Type == SOCK_STREAM && !listening))
        {
            return false;
        }

        var local = localAddress;
        return local is not null && (local.Equals(IPAddress.Any) || local.Equals(IPAddress.IPv6Any) || local.Equals(address)
            || (local.IsIPv4MappedToIPv6 && local.MapToIPv4().Equals(address)));
    }

    private static ErrnoException HostErrno() => ErrnoException.Of((Errno)LibC.Errno);

    public PollEvents Poll(PollEvents mask)
    {
        var pfd = new LibC.PollFd { Fd = fd, Events = (short)(LibC.POLLIN | LibC.POLLOUT | 0x2 /* POLLPRI */ | 0x2000 /* POLLRDHUP */) };
        if (LibC.Poll(&pfd, 1, 0) < 0)
        {
            return 0;
        }

        // The host's poll bits are Linux's, as PollEvents are.
        var ready = (PollEvents)(ushort)pfd.Revents;
        if ((ready & PollEvents.In) != 0)
        {
            ready |= PollEvents.ReadNormal;
        }

        if ((ready & PollEvents.Out) != 0)
        {
            ready |= PollEvents.WriteNormal;
        }

        if ((ready & PollEvents.Priority) != 0)
        {
            ready |= PollEvents.ReadBand;
        }

        return ready & (mask | PollEvents.Error | PollEvents.HangUp);
    }

    public void Bind(ReadOnlySpan<byte> address)
    {
        // Whatever the family field says (inet_bind takes AF_UNSPEC with INADDR_ANY too), the port is checked.
        int port = NetworkPolicy.PortOf(address);
        if (!stack.Policy.MayBind(port))
        {
            stack.Refused("bind", Describe(address), port);
            throw ErrnoException.Of(Errno.EACCES);
        }

        fixed (byte* a = address)
        {
            if (LibC.Bind(fd, a, (uint)address.Length) != 0)
            {
                throw HostErrno();
            }
        }

        RefreshLocal();
    }

    public void Listen(int backlog)
    {
        RefreshLocal();
        if (Type == SOCK_STREAM && !stack.Policy.MayListen(localPort))
        {
            stack.Refused("listen", localAddress ?? IPAddress.Any, localPort);
            throw ErrnoException.Of(Errno.EACCES);
        }

        if (LibC.Listen(fd, backlog) != 0)
        {
            throw HostErrno();
        }

        listening = true;
    }

    public ISocket Accept()
    {
        int accepted = LibC.Accept4(fd, null, null, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (accepted < 0)
        {
            int errno = LibC.Errno;
            throw ErrnoException.Of(errno == LibC.EAGAIN ? Errno.EAGAIN : (Errno)errno);
        }

        var socket = new HostSocket(stack, accepted, Family, Type, Protocol)
        {
            receiveTimeout = receiveTimeout,
            sendTimeout = sendTimeout,
        };
        socket.RefreshLocal();
        return socket;
    }

    public void Connect(ReadOnlySpan<byte> address) => Connect(address, nonBlocking: false);

    public void Connect(ReadOnlySpan<byte> address, bool nonBlocking)
    {
        if (address.Length >= 2 && BinaryPrimitives.ReadUInt16LittleEndian(address) == AF_UNSPEC)
        {
            // Dissolves the association (UDP) or disconnects (TCP): reaches nothing.
            HostConnect(address, nonBlocking);
            return;
        }

        Check("connect", address);
        HostConnect(address, nonBlocking);
    }

    private void HostConnect(ReadOnlySpan<byte> address, bool nonBlocking)
    {
        int result;
        fixed (byte* a = address)
        {
            result = LibC.Connect(fd, a, (uint)address.Length);
        }

        int errno = result == 0 ? 0 : LibC.Errno;
        RefreshLocal();
        if (errno == 0)
        {
            return;
        }

        if (errno is (int)Errno.EINPROGRESS or (int)Errno.EALREADY && !nonBlocking)
        {
            // The host socket is non-blocking; the layer waits for writability as a blocking connect would.
            throw ErrnoException.Of(Errno.EINPROGRESS);
        }

        throw ErrnoException.Of((Errno)errno);
    }

    /// <summary>After a blocking connect's wait: the host's connect moves its socket to connected, as Linux's blocking connect does before returning.</summary>
    public void ConnectCompleted(ReadOnlySpan<byte> address)
    {
        fixed (byte* a = address)
        {
            LibC.Connect(fd, a, (uint)address.Length);
        }

        RefreshLocal();
    }

    /// <summary>Refuses (EACCES, logged) a destination the policy does not allow; bad addresses get Linux's errno.</summary>
    private void Check(string what, ReadOnlySpan<byte> address)
    {
        if (!NetworkPolicy.TryParse(address, Family, out var ip, out int port, out var error))
        {
            throw ErrnoException.Of(error);
        }

        if (!stack.MayReach(Type, ip, port))
        {
            stack.Refused(what, ip, port);
            throw ErrnoException.Of(Errno.EACCES);
        }
    }

    private static IPAddress Describe(ReadOnlySpan<byte> address) =>
        NetworkPolicy.TryParse(address, AF_INET6, out var ip, out _, out _) ? ip : IPAddress.None;

    private void RefreshLocal()
    {
        byte* a = stackalloc byte[MaxAddress];
        uint length = MaxAddress;
        if (LibC.GetSockName(fd, a, &length) != 0)
        {
            return;
        }

        var span = new ReadOnlySpan<byte>(a, (int)Math.Min(length, MaxAddress));
        int family = span.Length >= 2 ? BinaryPrimitives.ReadUInt16LittleEndian(span) : 0;
        if (family == AF_INET && span.Length >= 8)
        {
            localAddress = new IPAddress(span.Slice(4, 4));
        }
        else if (family == AF_INET6 && span.Length >= 24)
        {
            localAddress = new IPAddress(span.Slice(8, 16));
        }

        localPort = NetworkPolicy.PortOf(span);
    }

    public int GetLocalAddress(Span<byte> address) => GetName(address, peer: false);

    public int GetPeerAddress(Span<byte> address) => GetName(address, peer: true);

    private int GetName(Span<byte> address, bool peer)
    {
        byte* a = stackalloc byte[MaxAddress];
        uint length = MaxAddress;
        int result = peer ? LibC.GetPeerName(fd, a, &length) : LibC.GetSockName(fd, a, &length);
        if (result != 0)
        {
            throw HostErrno();
        }

        int n = (int)Math.Min(length, MaxAddress);
        new ReadOnlySpan<byte>(a, Math.Min(n, address.Length)).CopyTo(address);
        return n;
    }

    public long Send(ReadOnlySpan<byte> data, ReadOnlySpan<byte> address, int flags)
    {
        if (!address.IsEmpty)
        {
            if (Type == SOCK_STREAM && (flags & MSG_FASTOPEN) == 0)
            {
                // tcp_sendmsg ignores the address unless it opens the connection (TCP Fast Open).
                address = default;
            }
            else if (address.Length >= 2 && BinaryPrimitives.ReadUInt16LittleEndian(address) == AF_UNSPEC && Family == AF_INET6)
            {
                // udpv6_sendmsg takes AF_UNSPEC as no address.
                address = default;
            }
            else
            {
                Check("sendto", UnspecifiedAsInet(address, out var rewritten) ? rewritten : address);
                if (rewritten is not null)
                {
                    address = rewritten;
                }
            }
        }

        nint n;
        fixed (byte* d = data)
        fixed (byte* a = address)
        {
            n = LibC.SendTo(fd, d, (nuint)data.Length, (flags & SendFlags) | MSG_DONTWAIT | MSG_NOSIGNAL, address.IsEmpty ? null : a, (uint)address.Length);
        }

        if (n < 0)
        {
            throw HostErrno();
        }

        if (localPort == 0)
        {
            RefreshLocal();
        }

        return n;
    }

    /// <summary>udp_sendmsg reads an AF_UNSPEC address of an AF_INET socket as AF_INET: the host gets it written so.</summary>
    private bool UnspecifiedAsInet(ReadOnlySpan<byte> address, out byte[]? rewritten)
    {
        rewritten = null;
        if (Family != AF_INET || address.Length < 16 || BinaryPrimitives.ReadUInt16LittleEndian(address) != AF_UNSPEC)
        {
            return false;
        }

        rewritten = address.ToArray();
        BinaryPrimitives.WriteUInt16LittleEndian(rewritten, AF_INET);
        return true;
    }

    public long Receive(Span<byte> data, Span<byte> address, out int addressLength, ref int flags)
    {
        byte* name = stackalloc byte[MaxAddress];
        nint n;
        LibC.MsgHdr header;
        fixed (byte* d = data)
        {
            var iov = new LibC.IoVec { Base = d, Length = (nuint)data.Length };
            header = new LibC.MsgHdr { Name = name, NameLength = MaxAddress, Iov = &iov, IovLength = 1 };
            n = LibC.RecvMsg(fd, &header, (flags & ReceiveFlags) | MSG_DONTWAIT);
        }

        if (n < 0)
        {
            throw HostErrno();
        }

        addressLength = Type == SOCK_STREAM ? 0 : (int)Math.Min(header.NameLength, MaxAddress);
        new ReadOnlySpan<byte>(name, Math.Min(addressLength, address.Length)).CopyTo(address);
        flags = header.Flags & (MSG_TRUNC | MSG_CTRUNC | MSG_EOR | MSG_OOB);
        return n;
    }

    public long Read(Span<byte> buffer, ref long offset)
    {
        int flags = 0;
        return Receive(buffer, default, out _, ref flags);
    }

    public long Write(ReadOnlySpan<byte> buffer, ref long offset, bool append) => Send(buffer, default, 0);

    public void Shutdown(int how)
    {
        if (LibC.Shutdown(fd, how) != 0)
        {
            throw HostErrno();
        }
    }

    public long Ioctl(uint request, ulong argument, ISyscallContext context)
    {
        switch (request)
        {
            case SIOCINQ or SIOCOUTQ or SIOCATMARK:
            {
                int value = 0;
                if (LibC.Ioctl(fd, request, &value) != 0)
                {
                    throw HostErrno();
                }

                context.Memory.WriteValue(argument, value);
                return 0;
            }

            default:
                return NetDevices.Ioctl(request, argument, context);
        }
    }

    public int GetOption(int level, int name, Span<byte> value)
    {
        if (level == SOL_SOCKET && name is SO_RCVTIMEO_OLD or SO_SNDTIMEO_OLD or SO_RCVTIMEO_NEW or SO_SNDTIMEO_NEW)
        {
            return SocketTimeout.Write(name is SO_RCVTIMEO_OLD or SO_RCVTIMEO_NEW ? ReceiveTimeout : SendTimeout, value);
        }

        if (!Readable(level, name))
        {
            throw ErrnoException.Of(Errno.ENOPROTOOPT);
        }

        byte* buffer = stackalloc byte[256];
        uint length = (uint)Math.Min(value.Length, 256);
        if (LibC.GetSockOpt(fd, level, name, buffer, &length) != 0)
        {
            throw HostErrno();
        }

        int copied = (int)Math.Min(length, (uint)value.Length);
        new ReadOnlySpan<byte>(buffer, copied).CopyTo(value);
        return copied;
    }

    public void SetOption(int level, int name, ReadOnlySpan<byte> value)
    {
        if (SocketTimeout.TrySetOption(level, name, value, ref receiveTimeout, ref sendTimeout))
        {
            return;
        }

        if (level == SOL_SOCKET && name is SO_SNDBUFFORCE or SO_RCVBUFFORCE or SO_BINDTODEVICE or SO_MARK)
        {
            // Need CAP_NET_ADMIN, which the sandbox does not have (whatever the Sentry holds).
            throw ErrnoException.Of(Errno.EPERM);
        }

        if (level == SOL_SOCKET && name == SO_PRIORITY && value.Length >= 4 && (uint)BinaryPrimitives.ReadInt32LittleEndian(value) > 6)
        {
            throw ErrnoException.Of(Errno.EPERM);
        }

        if (!Writable(level, name))
        {
            throw ErrnoException.Of(Errno.ENOPROTOOPT);
        }

        fixed (byte* v = value)
        {
            if (LibC.SetSockOpt(fd, level, name, v, (uint)value.Length) != 0)
            {
                throw HostErrno();
            }
        }
    }

    private const int SO_MARK = 36, SO_TIMESTAMP = 29, SO_INCOMING_CPU = 49;
    private const int TCP_DEFER_ACCEPT = 9, TCP_WINDOW_CLAMP = 10, TCP_CONGESTION = 13, TCP_NOTSENT_LOWAT = 25, TCP_SYNCNT = 7, TCP_LINGER2 = 8, TCP_FASTOPEN_CONNECT = 30;
    private const int IPV6_TCLASS = 67;

    /// <summary>The options a program may set on its host socket: what an unprivileged Linux process may, and nothing that makes a control message.</summary>
    private bool Writable(int level, int name) => level switch
    {
        SOL_SOCKET => name is SO_REUSEADDR or SO_REUSEPORT or SO_KEEPALIVE or SO_SNDBUF or SO_RCVBUF or SO_LINGER
            or SO_BROADCAST or SO_OOBINLINE or SO_RCVLOWAT or SO_SNDLOWAT or SO_DONTROUTE or SO_PRIORITY or SO_DEBUG
            or SO_NO_CHECK or SO_BSDCOMPAT or SO_PASSCRED or SO_INCOMING_CPU
            or SO_ERROR or SO_TYPE or SO_DOMAIN or SO_PROTOCOL or SO_ACCEPTCONN or SO_PEERCRED,
        SOL_TCP => Type == SOCK_STREAM && name is TCP_NODELAY or TCP_MAXSEG or TCP_CORK or TCP_KEEPIDLE or TCP_KEEPINTVL
            or TCP_KEEPCNT or TCP_QUICKACK or TCP_USER_TIMEOUT or TCP_DEFER_ACCEPT or TCP_WINDOW_CLAMP or TCP_NOTSENT_LOWAT
            or TCP_SYNCNT or TCP_LINGER2 or TCP_FASTOPEN_CONNECT,
        SOL_IP => Family == AF_INET && name is IP_TOS or IP_TTL or IP_RECVERR,
        SOL_IPV6 => Family == AF_INET6 && name is IPV6_V6ONLY or IPV6_UNICAST_HOPS or IPV6_RECVERR or IPV6_TCLASS,
        _ => false,
    };

    private bool Readable(int level, int name) =>
        Writable(level, name) || (level == SOL_SOCKET && name == SO_TIMESTAMP) || (level == SOL_TCP && Type == SOCK_STREAM && name is TCP_INFO or TCP_CONGESTION);

    public void Release()
    {
        if (Interlocked.Exchange(ref released, 1) != 0)
        {
            return;
        }

        stack.Remove(this);
        stack.Poller.Unwatch(fd);
        LibC.Close(fd);
    }
}
