using System.Buffers.Binary;
using AppKernel.Networking;
using AppKernel.Sentry.Kernel;
using AppKernel.Sentry.Vfs;
using AppKernel.Syscalls;
using AppKernel.Vfs;
using static AppKernel.Sentry.Net.SocketConstants;

namespace AppKernel.Sentry.Net;

/// <summary>
/// A socket the Sentry implements itself (Unix sockets, the loopback stack): what every such
/// socket shares — its family, type and protocol, the wait queue, the SOL_SOCKET options, the
/// inode fstat shows, and the namespace its addresses live in. The stream and datagram kinds
/// (<see cref="StreamSocket"/>, <see cref="DatagramSocket"/>) hold the state machines; the
/// namespace (<see cref="SocketNamespace"/>) the family's addressing.
/// </summary>
internal abstract class SentrySocket : IKernelSocket
{
    private readonly SocketInode inode;
    private Dictionary<(int Level, int Name), int>? plainOptions;

    protected SentrySocket(SocketNamespace space, int family, int type, int protocol)
    {
        Namespace = space;
        Family = family;
        Type = type;
        Protocol = protocol;
        var creator = CurrentCredentials();
        inode = new SocketInode(creator.Uid, creator.Gid);
        bool unix = family == AF_UNIX;
        SendBufferSize = unix || type == SOCK_DGRAM ? DefaultBuffer : 16384;
        ReceiveBufferSize = unix || type == SOCK_DGRAM ? DefaultBuffer : 131072;
    }

    public SocketNamespace Namespace { get; }

    public int Family { get; }

    public int Type { get; }

    public int Protocol { get; }

    /// <summary>Every socket of a namespace shares its lock: connections join two sockets.</summary>
    protected object Gate => Namespace.Gate;

    public WaitQueue Waiters { get; } = new();

    WaitQueue? IFileOperations.Waiters => Waiters;

    public IInode? Inode => inode;

    public bool IsStream => true;

    public ulong Id => inode.Number;

    /// <summary>The bound address as the family writes it (null when unbound).</summary>
    public byte[]? LocalAddress { get; set; }

    /// <summary>The open file description holding this socket (set when installed): its owner gets SIGURG.</summary>
    public FileDescription? Description { get; set; }

    /// <summary>SO_OOBINLINE: urgent bytes stay in the stream.</summary>
    protected bool OobInline => Plain(SOL_SOCKET, SO_OOBINLINE) != 0;

    /// <summary>SIOCATMARK: whether the next byte to read is at the urgent mark (only TCP has one).</summary>
    public virtual bool AtUrgentMark => false;

    public bool ReuseAddress { get; set; }

    public bool ReusePort { get; set; }

    public bool KeepAlive { get; set; }

    public bool PassCredentials { get; set; }

    public bool NoDelay { get; set; }

    public bool V6Only { get; set; }

    public int SendBufferSize { get; set; }

    public int ReceiveBufferSize { get; set; }

    public (int OnOff, int Seconds) Linger { get; set; }

    private long receiveTimeout, sendTimeout;

    /// <summary>SO_RCVTIMEO / SO_SNDTIMEO in nanoseconds; 0 waits forever.</summary>
    public long ReceiveTimeout { get => receiveTimeout; set => receiveTimeout = value; }

    public long SendTimeout { get => sendTimeout; set => sendTimeout = value; }

    /// <summary>SO_ERROR: an error to report once (a refused connection).</summary>
    public int PendingError { get; set; }

    /// <summary>SO_PEERCRED.</summary>
    public SocketCredentials PeerCredentials { get; set; } = SocketCredentials.None;

    public abstract bool IsListening { get; }

    /// <summary>The calling task's credentials (pid, real uid, real gid), or root's for the Sentry's own calls.</summary>
    public static SocketCredentials CurrentCredentials()
    {
        var task = KernelTask.Current;
        return task is null ? new SocketCredentials(0, 0, 0) : new SocketCredentials(task.Pid, task.Credentials.RealUid, task.Credentials.RealGid);
    }

    /// <summary>What SO_PEERCRED records for the caller: its effective ids.</summary>
    public static SocketCredentials CurrentPeerCredentials()
    {
        var task = KernelTask.Current;
        return task is null ? new SocketCredentials(0, 0, 0) : new SocketCredentials(task.Pid, task.Credentials.EffectiveUid, task.Credentials.EffectiveGid);
    }

    public abstract PollEvents Poll(PollEvents mask);

    public abstract void Bind(ReadOnlySpan<byte> address);

    public abstract void Listen(int backlog);

    public abstract ISocket Accept();

    /// <summary>connect(2) with the caller's blocking mode (a TCP-like connect reports EINPROGRESS only when non-blocking).</summary>
    public abstract void Connect(ReadOnlySpan<byte> address, bool nonBlocking);

    public void Connect(ReadOnlySpan<byte> address) => Connect(address, nonBlocking: false);

    public virtual void ConnectCompleted(ReadOnlySpan<byte> address)
    {
    }

    public abstract int GetPeerAddress(Span<byte> address);

    public int GetLocalAddress(Span<byte> address)
    {
        byte[] local;
        lock (Gate)
        {
            local = LocalAddress ?? Namespace.Unnamed(this);
        }

        return CopyAddress(local, address);
    }

    public static int CopyAddress(byte[]? source, Span<byte> destination)
    {
        if (source is null)
        {
            return 0;
        }

        source.AsSpan(0, Math.Min(source.Length, destination.Length)).CopyTo(destination);
        return source.Length;
    }

    /// <summary>Sends with ancillary data; the socket owns <paramref name="control"/> only when the call succeeds.</summary>
    public abstract long SendMessage(ReadOnlySpan<byte> data, ReadOnlySpan<byte> address, int flags, SocketControl? control);

    /// <summary>Receives one message (or stream bytes) with its sender and ancillary data.</summary>
    public abstract long ReceiveMessage(Span<byte> data, int flags, out byte[]? sender, out SocketControl? control, out int messageFlags);

    public long Send(ReadOnlySpan<byte> data, ReadOnlySpan<byte> address, int flags) => SendMessage(data, address, flags, null);

    public long Receive(Span<byte> data, Span<byte> address, out int addressLength, ref int flags)
    {
        long n = ReceiveMessage(data, flags, out var sender, out var control, out flags);
        control?.Release();
        addressLength = CopyAddress(sender, address);
        return n;
    }

    public long Read(Span<byte> buffer, ref long offset)
    {
        int flags = 0;
        return Receive(buffer, default, out _, ref flags);
    }

    public long Write(ReadOnlySpan<byte> buffer, ref long offset, bool append) => Send(buffer, default, 0);

    public abstract void Shutdown(int how);

    /// <summary>Bytes waiting to be read (FIONREAD/SIOCINQ).</summary>
    public abstract int InputQueued { get; }

    /// <summary>Bytes sent and not yet read by the peer (SIOCOUTQ).</summary>
    public abstract int OutputQueued { get; }

    public long Ioctl(uint request, ulong argument, ISyscallContext context)
    {
        switch (request)
        {
            case SIOCINQ:
                if (IsListening)
                {
                    throw ErrnoException.Of(Errno.EINVAL);
                }

                context.Memory.WriteValue(argument, InputQueued);
                return 0;
            case SIOCOUTQ:
                if (IsListening)
                {
                    throw ErrnoException.Of(Errno.EINVAL);
                }

                context.Memory.WriteValue(argument, OutputQueued);
                return 0;
            case SIOCATMARK when Type == SOCK_STREAM:
                // Whether the next byte to read is the one the urgent mark points at (TCP only).
                context.Memory.WriteValue(argument, AtUrgentMark ? 1 : 0);
                return 0;
            default:
                return NetDevices.Ioctl(request, argument, context);
        }
    }

    public virtual int GetOption(int level, int name, Span<byte> value)
    {
        if (level == SOL_SOCKET)
        {
            switch (name)
            {
                case SO_TYPE: return WriteInt(value, Type);
                case SO_DOMAIN: return WriteInt(value, Family);
                case SO_PROTOCOL: return WriteInt(value, Protocol);
                case SO_ACCEPTCONN: return WriteInt(value, IsListening ? 1 : 0);
                case SO_REUSEADDR: return WriteInt(value, ReuseAddress ? 1 : 0);
                case SO_REUSEPORT: return WriteInt(value, ReusePort ? 1 : 0);
                case SO_KEEPALIVE: return WriteInt(value, KeepAlive ? 1 : 0);
                case SO_PASSCRED: return WriteInt(value, PassCredentials ? 1 : 0);
                case SO_SNDBUF: return WriteInt(value, SendBufferSize);
                case SO_RCVBUF: return WriteInt(value, ReceiveBufferSize);
                case SO_ERROR:
                    lock (Gate)
                    {
                        int error = PendingError;
                        PendingError = 0;
                        return WriteInt(value, error);
                    }

                case SO_LINGER:
                {
                    Span<byte> linger = stackalloc byte[8];
                    BinaryPrimitives.WriteInt32LittleEndian(linger, Linger.OnOff);
                    BinaryPrimitives.WriteInt32LittleEndian(linger[4..], Linger.Seconds);
                    return Copy(linger, value);
                }

                case SO_PEERCRED:
                {
                    var credentials = PeerCredentials;
                    Span<byte> ucred = stackalloc byte[12];
                    BinaryPrimitives.WriteInt32LittleEndian(ucred, credentials.Pid);
                    BinaryPrimitives.WriteInt32LittleEndian(ucred[4..], credentials.Uid);
                    BinaryPrimitives.WriteInt32LittleEndian(ucred[8..], credentials.Gid);
                    return Copy(ucred, value);
                }

                case SO_RCVTIMEO_OLD or SO_SNDTIMEO_OLD or SO_RCVTIMEO_NEW or SO_SNDTIMEO_NEW:
                {
                    return SocketTimeout.Write(name is SO_RCVTIMEO_OLD or SO_RCVTIMEO_NEW ? ReceiveTimeout : SendTimeout, value);
                }

                case SO_DEBUG or SO_DONTROUTE or SO_BROADCAST or SO_OOBINLINE or SO_NO_CHECK or SO_PRIORITY or SO_BSDCOMPAT:
                    return WriteInt(value, Plain(level, name));
                case SO_RCVLOWAT or SO_SNDLOWAT:
                    return WriteInt(value, Plain(level, name, 1));
            }

            throw ErrnoException.Of(Errno.ENOPROTOOPT);
        }

        return GetProtocolOption(level, name, value);
    }

    public virtual void SetOption(int level, int name, ReadOnlySpan<byte> value)
    {
        if (level != SOL_SOCKET)
        {
            SetProtocolOption(level, name, value);
            return;
        }

        if (SocketTimeout.TrySetOption(level, name, value, ref receiveTimeout, ref sendTimeout))
        {
            return;
        }

        if (name == SO_LINGER)
        {
            if (value.Length < 8)
            {
                throw ErrnoException.Of(Errno.EINVAL);
            }

            Linger = (BinaryPrimitives.ReadInt32LittleEndian(value) != 0 ? 1 : 0, BinaryPrimitives.ReadInt32LittleEndian(value[4..]));
            return;
        }

        int v = ReadInt(value);
        switch (name)
        {
            case SO_REUSEADDR: ReuseAddress = v != 0; return;
            case SO_REUSEPORT: ReusePort = v != 0; return;
            case SO_KEEPALIVE: KeepAlive = v != 0; return;
            case SO_PASSCRED: PassCredentials = v != 0; return;
            case SO_SNDBUF or SO_SNDBUFFORCE:
                // As Linux: capped at wmem_max, doubled for bookkeeping, at least SOCK_MIN_SNDBUF.
                SendBufferSize = Math.Max(4608, (int)Math.Min((long)(uint)Math.Min(v < 0 ? 0 : v, DefaultBuffer) * 2, int.MaxValue));
                return;
            case SO_RCVBUF or SO_RCVBUFFORCE:
                ReceiveBufferSize = Math.Max(2304, (int)Math.Min((long)(uint)Math.Min(v < 0 ? 0 : v, DefaultBuffer) * 2, int.MaxValue));
                return;
            case SO_DEBUG or SO_DONTROUTE or SO_BROADCAST or SO_OOBINLINE or SO_NO_CHECK or SO_PRIORITY or SO_BSDCOMPAT:
                SetPlain(level, name, v != 0 && name != SO_PRIORITY ? 1 : v);
                return;
            case SO_RCVLOWAT or SO_SNDLOWAT:
                SetPlain(level, name, v <= 0 ? 1 : v);
                return;
            case SO_ERROR or SO_TYPE or SO_DOMAIN or SO_PROTOCOL or SO_ACCEPTCONN or SO_PEERCRED:
                throw ErrnoException.Of(Errno.ENOPROTOOPT);
        }

        throw ErrnoException.Of(Errno.ENOPROTOOPT);
    }

    /// <summary>Options of levels other than SOL_SOCKET (TCP, IP, IPv6): ENOPROTOOPT unless the kind knows them.</summary>
    protected virtual int GetProtocolOption(int level, int name, Span<byte> value) => throw ErrnoException.Of(Errno.ENOPROTOOPT);

    protected virtual void SetProtocolOption(int level, int name, ReadOnlySpan<byte> value) => throw ErrnoException.Of(Errno.ENOPROTOOPT);

    public int PlainOption(int level, int name, int fallback) => Plain(level, name, fallback);

    public void SetPlainOption(int level, int name, int value) => SetPlain(level, name, value);

    protected int Plain(int level, int name, int fallback = 0)
    {
        lock (inode)
        {
            return plainOptions is not null && plainOptions.TryGetValue((level, name), out int v) ? v : fallback;
        }
    }

    protected void SetPlain(int level, int name, int value)
    {
        lock (inode)
        {
            (plainOptions ??= new())[(level, name)] = value;
        }
    }

    public static int ReadInt(ReadOnlySpan<byte> value)
    {
        if (value.Length < 4)
        {
            // Linux reads an int, but takes a shorter buffer as zero-extended where it can; sockets want at least one int.
            throw ErrnoException.Of(Errno.EINVAL);
        }

        return BinaryPrimitives.ReadInt32LittleEndian(value);
    }

    public static int WriteInt(Span<byte> value, int v)
    {
        Span<byte> bytes = stackalloc byte[4];
        BinaryPrimitives.WriteInt32LittleEndian(bytes, v);
        return Copy(bytes, value);
    }

    private static int Copy(ReadOnlySpan<byte> source, Span<byte> destination)
    {
        int n = Math.Min(source.Length, destination.Length);
        source[..n].CopyTo(destination);
        return n;
    }

    /// <summary>Called once, when the last reference to the description goes.</summary>
    public abstract void Release();

    /// <summary>Tells waiters on this socket of <paramref name="events"/> (call without holding the gate).</summary>
    public void Notify(PollEvents events) => Waiters.Notify(events);
}

/// <summary>The inode of a socket (sockfs): fstat shows S_IFSOCK, mode 0777, the creator's ids.</summary>
internal sealed class SocketInode : IInode, IFileSystem
{
    private const long SockFsMagic = 0x534F434B;
    private static long nextNumber = 100000;
    private readonly Timespec created = Timespec.Now;
    private readonly int uid;
    private readonly int gid;

    public SocketInode(int uid, int gid)
    {
        this.uid = uid;
        this.gid = gid;
        Number = (ulong)Interlocked.Increment(ref nextNumber);
    }

    public ulong Number { get; }

    public IFileSystem FileSystem => this;

    public InodeAttributes GetAttributes() => new()
    {
        Ino = Number,
        Mode = AppKernel.Vfs.FileMode.Socket | (AppKernel.Vfs.FileMode)0x1FF,
        Links = 1,
        Uid = uid,
        Gid = gid,
        BlockSize = 4096,
        AccessTime = created,
        ModifyTime = created,
        ChangeTime = created,
    };

    public IFileOperations Open(OpenFlags flags) => throw ErrnoException.Of(Errno.ENXIO);

    string IFileSystem.TypeName => "sockfs";

    IInode IFileSystem.Root => this;

    FileSystemStatistics IFileSystem.GetStatistics() => new(SockFsMagic, 4096, 0, 0, 0, 0, 0);
}
