using AppKernel.Networking;
using AppKernel.Vfs;
using static AppKernel.Sentry.Net.SocketConstants;

namespace AppKernel.Sentry.Net;

/// <summary>
/// A connection-oriented socket of the Sentry: Unix SOCK_STREAM and SOCK_SEQPACKET, and the
/// loopback stack's TCP. A connection is two sockets that point at each other, each with a
/// receive queue the other fills; connect makes the accepting side at once and queues it on the
/// listener's backlog. Shutdown and close follow Linux's rules per family (unix_shutdown,
/// tcp_shutdown): a Unix close shuts both directions of the peer, a TCP close sends a FIN (the
/// peer reads EOF, and its first write after that is the last before EPIPE, as a reset would make it).
/// </summary>
internal sealed class StreamSocket : SentrySocket
{
    private readonly Queue<SocketMessage> queue = new();
    private Queue<StreamSocket>? backlog;
    private int backlogLimit;
    private int queued;
    private StreamSocket? peer;
    private byte[]? peerAddress;
    private bool connected;
    private bool listening;
    private bool rcvShutdown;
    private bool sndShutdown;
    private bool peerGone;
    private bool resetSent;
    private bool connectReported;
    private bool released;
    private SocketCredentials listenCredentials;

    public StreamSocket(SocketNamespace space, int family, int type, int protocol)
        : base(space, family, type, protocol)
    {
    }

    private bool Records => Type == SOCK_SEQPACKET;

    private bool Tcp => Family != AF_UNIX;

    private int Capacity => Tcp ? Math.Max(ReceiveBufferSize, 2 << 20) : ReceiveBufferSize;

    public override bool IsListening
    {
        get
        {
            lock (Gate)
            {
                return listening;
            }
        }
    }

    /// <summary>Joins two new sockets (socketpair).</summary>
    public static void Pair(StreamSocket a, StreamSocket b)
    {
        var credentials = CurrentPeerCredentials();
        lock (a.Gate)
        {
            a.peer = b;
            b.peer = a;
            a.connected = b.connected = true;
            a.PeerCredentials = b.PeerCredentials = credentials;
            a.peerAddress = a.Namespace.Unnamed(b);
            b.peerAddress = b.Namespace.Unnamed(a);
        }
    }

    /// <summary>The peer's address while connected (for /proc/net), or null.</summary>
    public byte[]? RemoteAddress
    {
        get
        {
            lock (Gate)
            {
                return connected ? peerAddress : null;
            }
        }
    }

    public override PollEvents Poll(PollEvents mask)
    {
        PollEvents ready = 0;
        lock (Gate)
        {
            if (listening)
            {
                if (backlog!.Count > 0)
                {
                    ready |= PollEvents.In | PollEvents.ReadNormal;
                }

                return ready & (mask | PollEvents.Error | PollEvents.HangUp);
            }

            if (PendingError != 0)
            {
                ready |= PollEvents.Error;
            }

            if ((rcvShutdown && sndShutdown) || !connected)
            {
                ready |= PollEvents.HangUp;
            }

            if (rcvShutdown)
            {
                ready |= PollEvents.In | PollEvents.ReadNormal | PollEvents.ReadHangUp;
            }

            if (queued > 0 || (Records && queue.Count > 0))
            {
                ready |= PollEvents.In | PollEvents.ReadNormal;
            }

            bool writable = Tcp
                ? sndShutdown || peer is null || peer.queued < peer.Capacity
                : peer is null || peerGone || peer.queued * 4 <= peer.Capacity;
            if (writable)
            {
                ready |= PollEvents.Out | PollEvents.WriteNormal | (Tcp ? 0 : PollEvents.WriteBand);
            }
        }

        return ready & (mask | PollEvents.Error | PollEvents.HangUp);
    }

    public override void Bind(ReadOnlySpan<byte> address)
    {
        lock (Gate)
        {
            if (LocalAddress is not null && !UnixNamespace.IsPath(Family, address) || (Tcp && connected))
            {
                throw ErrnoException.Of(Errno.EINVAL);
            }
        }

        var local = Namespace.Bind(this, address);
        lock (Gate)
        {
            LocalAddress = local;
        }
    }

    public override void Listen(int backlogSize)
    {
        if (Tcp && LocalAddress is null)
        {
            // inet_listen binds an unbound socket to an ephemeral port on the wildcard address.
            Namespace.AutoBind(this, []);
        }

        if (Tcp && !IsListening)
        {
            Namespace.CheckListen(this);
        }

        lock (Gate)
        {
            if (connected || (!Tcp && LocalAddress is null))
            {
                throw ErrnoException.Of(Errno.EINVAL);
            }

            backlogLimit = (uint)backlogSize > SOMAXCONN ? SOMAXCONN : backlogSize;
            if (!listening)
            {
                listening = true;
                backlog = new Queue<StreamSocket>();
                listenCredentials = CurrentPeerCredentials();
            }
        }

        Notify(PollEvents.All);
    }

    /// <summary>True unless a listening socket's backlog is full (a connect would wait).</summary>
    private bool BacklogHasRoom
    {
        get
        {
            lock (Gate)
            {
                return !listening || released || backlog!.Count <= backlogLimit;
            }
        }
    }

    public override ISocket Accept()
    {
        StreamSocket accepted;
        lock (Gate)
        {
            if (!listening)
            {
                throw ErrnoException.Of(Errno.EINVAL);
            }

            if (backlog!.Count == 0)
            {
                throw ErrnoException.Of(Errno.EAGAIN);
            }

            accepted = backlog.Dequeue();
        }

        // Connectors waiting for room in the backlog hear of it.
        Notify(PollEvents.Out);
        return accepted;
    }

    public override void Connect(ReadOnlySpan<byte> address, bool nonBlocking)
    {
        lock (Gate)
        {
            if (listening)
            {
                throw ErrnoException.Of(Errno.EINVAL);
            }

            if (connected)
            {
                if (!connectReported && Tcp)
                {
                    // The first connect after EINPROGRESS reports the outcome: success.
                    connectReported = true;
                    return;
                }

                throw ErrnoException.Of(Errno.EISCONN);
            }
        }

        SentrySocket? target;
        byte[] destination;
        try
        {
            target = Namespace.Lookup(this, address, out destination);
            if (target is null)
            {
                throw ErrnoException.Of(Errno.ECONNREFUSED);
            }
        }
        catch (ErrnoException e) when (e.Errno == Errno.ECONNREFUSED && Tcp && nonBlocking)
        {
            Refuse();
            throw ErrnoException.Of(Errno.EINPROGRESS);
        }

        if (!Tcp && !nonBlocking && target is StreamSocket { Type: var targetType } waitOn && targetType == Type)
        {
            // A blocking Unix connect waits for room in the listener's backlog (unix_wait_for_peer).
            Kernel.KernelTask.Current?.WaitUntil(waitOn.Waiters, PollEvents.All, () => waitOn.BacklogHasRoom);
        }

        StreamSocket server;
        StreamSocket listener;
        lock (Gate)
        {
            if (connected)
            {
                throw ErrnoException.Of(Errno.EISCONN);
            }

            if (target is not StreamSocket stream || stream.Type != Type)
            {
                throw ErrnoException.Of(Errno.EPROTOTYPE);
            }

            listener = stream;
            if (!listener.listening || listener.released)
            {
                if (Tcp && nonBlocking)
                {
                    RefuseLocked();
                    server = null!;
                    goto refused;
                }

                throw ErrnoException.Of(Errno.ECONNREFUSED);
            }

            if (!Tcp && listener.backlog!.Count > listener.backlogLimit)
            {
                throw ErrnoException.Of(Errno.EAGAIN);
            }

            if (Tcp)
            {
                Namespace.AutoBind(this, destination);
            }

            server = new StreamSocket(Namespace, listener.Family, Type, Protocol)
            {
                ReceiveBufferSize = listener.ReceiveBufferSize,
                SendBufferSize = listener.SendBufferSize,
                PassCredentials = listener.PassCredentials,
                NoDelay = listener.NoDelay,
                KeepAlive = listener.KeepAlive,
            };
            server.LocalAddress = Namespace.AcceptedLocal(listener, destination);
            server.connected = connected = true;
            server.connectReported = true;
            server.peer = this;
            peer = server;
            server.peerAddress = Namespace.ForReceiver(server, LocalAddress ?? Namespace.Unnamed(this));
            peerAddress = Tcp ? destination : listener.LocalAddress;
            server.PeerCredentials = CurrentPeerCredentials();
            PeerCredentials = listener.listenCredentials;
            listener.backlog!.Enqueue(server);
        }

        listener.Notify(PollEvents.In | PollEvents.ReadNormal);
        Notify(PollEvents.Out | PollEvents.WriteNormal);
        if (Tcp && nonBlocking)
        {
            throw ErrnoException.Of(Errno.EINPROGRESS);
        }

        connectReported = true;
        return;

    refused:
        Notify(PollEvents.All);
        throw ErrnoException.Of(Errno.EINPROGRESS);
    }

    private void Refuse()
    {
        lock (Gate)
        {
            RefuseLocked();
        }

        Notify(PollEvents.All);
    }

    private void RefuseLocked()
    {
        // As tcp_reset then tcp_done: the error once through SO_ERROR, both directions shut.
        PendingError = (int)Errno.ECONNREFUSED;
        rcvShutdown = sndShutdown = true;
    }

    public override int GetPeerAddress(Span<byte> address)
    {
        byte[]? remote;
        lock (Gate)
        {
            if (!connected)
            {
                throw ErrnoException.Of(Errno.ENOTCONN);
            }

            remote = peerAddress;
        }

        return CopyAddress(remote, address);
    }

    public override long SendMessage(ReadOnlySpan<byte> data, ReadOnlySpan<byte> address, int flags, SocketControl? control)
    {
        StreamSocket target;
        int n;
        lock (Gate)
        {
            if (!address.IsEmpty && !Tcp)
            {
                throw ErrnoException.Of(connected ? Errno.EISCONN : Errno.EOPNOTSUPP);
            }

            if (Tcp && PendingError != 0)
            {
                var error = (Errno)PendingError;
                PendingError = 0;
                throw ErrnoException.Of(error);
            }

            if (!connected || listening)
            {
                throw ErrnoException.Of(Tcp ? Errno.EPIPE : Errno.ENOTCONN);
            }

            if (sndShutdown)
            {
                throw ErrnoException.Of(Errno.EPIPE);
            }

            if (peerGone || peer is null)
            {
                if (Tcp && !resetSent)
                {
                    // The peer closed: this segment is answered by a reset, the next write fails.
                    resetSent = true;
                    control?.Release();
                    return data.Length;
                }

                throw ErrnoException.Of(Errno.EPIPE);
            }

            target = peer;
            int room = target.Capacity - target.queued;
            if (Records)
            {
                if (data.Length > SendBufferSize - 32)
                {
                    throw ErrnoException.Of(Errno.EMSGSIZE);
                }

                if (room < data.Length && target.queue.Count > 0)
                {
                    throw ErrnoException.Of(Errno.EAGAIN);
                }

                n = data.Length;
            }
            else
            {
                if (data.IsEmpty)
                {
                    return 0;
                }

                if (room <= 0)
                {
                    throw ErrnoException.Of(Errno.EAGAIN);
                }

                n = Math.Min(room, data.Length);
            }

            target.queue.Enqueue(new SocketMessage(data[..n].ToArray(), null, control));
            target.queued += n;
        }

        target.Notify(PollEvents.In | PollEvents.ReadNormal);
        return n;
    }

    public override long ReceiveMessage(Span<byte> data, int flags, out byte[]? sender, out SocketControl? control, out int messageFlags)
    {
        sender = null;
        control = null;
        messageFlags = 0;
        bool peek = (flags & MSG_PEEK) != 0;
        int copied = 0;
        StreamSocket? writer;
        lock (Gate)
        {
            if (listening)
            {
                throw ErrnoException.Of(Tcp ? Errno.ENOTCONN : Errno.EINVAL);
            }

            if (Tcp && PendingError != 0)
            {
                var error = (Errno)PendingError;
                PendingError = 0;
                throw ErrnoException.Of(error);
            }

            if (!connected)
            {
                throw ErrnoException.Of(Tcp || Records ? Errno.ENOTCONN : Errno.EINVAL);
            }

            if (queue.Count == 0)
            {
                if (rcvShutdown)
                {
                    return 0;
                }

                throw ErrnoException.Of(Errno.EAGAIN);
            }

            writer = peer;
            if (Records)
            {
                var message = queue.Peek();
                int n = Math.Min(message.Length, data.Length);
                message.Data.AsSpan(0, n).CopyTo(data);
                if (message.Length > data.Length)
                {
                    messageFlags |= MSG_TRUNC;
                }

                if (!peek)
                {
                    queue.Dequeue();
                    queued -= message.Length;
                    control = message.Control;
                }

                copied = (flags & MSG_TRUNC) != 0 ? message.Length : n;
            }
            else
            {
                // Segments merge into one read unless one carries files (the read ends with it) or,
                // with SO_PASSCRED, comes from another sender (unix_stream_read_generic).
                SocketCredentials? first = null;
                foreach (var segment in queue)
                {
                    bool files = segment.Control?.Files is not null;
                    var from = segment.Control?.Credentials;
                    if (copied == data.Length || (copied > 0 && (files || (PassCredentials && from != first))))
                    {
                        break;
                    }

                    int n = Math.Min(segment.Length, data.Length - copied);
                    segment.Data.AsSpan(segment.Offset, n).CopyTo(data[copied..]);
                    if (copied == 0)
                    {
                        first = from;
                        if (!peek)
                        {
                            control = segment.Control;
                            segment.Control = from is { } c ? new SocketControl { Credentials = c } : null;
                        }
                        else if (from is { } c)
                        {
                            control = new SocketControl { Credentials = c };
                        }
                    }

                    copied += n;
                    if (files)
                    {
                        break;
                    }
                }

                if (!peek)
                {
                    int left = copied;
                    while (left > 0)
                    {
                        var segment = queue.Peek();
                        int n = Math.Min(segment.Length, left);
                        segment.Offset += n;
                        left -= n;
                        if (segment.Length == 0)
                        {
                            queue.Dequeue();
                        }
                    }

                    queued -= copied;
                }
            }
        }

        if (!peek)
        {
            writer?.Notify(PollEvents.Out | PollEvents.WriteNormal);
        }

        return copied;
    }

    public override void Shutdown(int how)
    {
        if (how is < SHUT_RD or > SHUT_RDWR)
        {
            throw ErrnoException.Of(Errno.EINVAL);
        }

        bool read = how != SHUT_WR;
        bool write = how != SHUT_RD;
        StreamSocket? other;
        List<StreamSocket>? dropped = null;
        lock (Gate)
        {
            if (Tcp && !connected && !listening)
            {
                throw ErrnoException.Of(Errno.ENOTCONN);
            }

            if (Tcp && listening)
            {
                if (read)
                {
                    // inet_shutdown on a listener disconnects it: pending connections are dropped.
                    listening = false;
                    dropped = [.. backlog!];
                    backlog!.Clear();
                }

                other = null;
            }
            else
            {
                rcvShutdown |= read;
                sndShutdown |= write;
                other = peer;
                if (other is not null)
                {
                    if (write)
                    {
                        other.rcvShutdown = true;
                    }

                    if (read && !Tcp)
                    {
                        other.sndShutdown = true;
                    }
                }
            }
        }

        if (dropped is not null)
        {
            foreach (var socket in dropped)
            {
                socket.Release();
            }
        }

        Notify(PollEvents.All);
        other?.Notify(PollEvents.All);
    }

    public override int InputQueued
    {
        get
        {
            lock (Gate)
            {
                if (Records)
                {
                    return queue.Count > 0 ? queue.Peek().Length : 0;
                }

                return queued;
            }
        }
    }

    public override int OutputQueued
    {
        get
        {
            lock (Gate)
            {
                return peer is null || peerGone ? 0 : peer.queued;
            }
        }
    }

    protected override int GetProtocolOption(int level, int name, Span<byte> value)
    {
        if (Tcp && level == SOL_TCP)
        {
            return name switch
            {
                TCP_NODELAY => WriteInt(value, NoDelay ? 1 : 0),
                TCP_MAXSEG => WriteInt(value, Plain(level, name, 65483)),
                TCP_CORK or TCP_QUICKACK or TCP_USER_TIMEOUT => WriteInt(value, Plain(level, name, name == TCP_QUICKACK ? 1 : 0)),
                TCP_KEEPIDLE => WriteInt(value, Plain(level, name, 7200)),
                TCP_KEEPINTVL => WriteInt(value, Plain(level, name, 75)),
                TCP_KEEPCNT => WriteInt(value, Plain(level, name, 9)),
                _ => throw ErrnoException.Of(Errno.ENOPROTOOPT),
            };
        }

        return InetOptions.Get(this, level, name, value);
    }

    protected override void SetProtocolOption(int level, int name, ReadOnlySpan<byte> value)
    {
        if (Tcp && level == SOL_TCP)
        {
            int v = ReadInt(value);
            switch (name)
            {
                case TCP_NODELAY:
                    NoDelay = v != 0;
                    return;
                case TCP_KEEPIDLE or TCP_KEEPINTVL or TCP_KEEPCNT or TCP_MAXSEG:
                    if (v < 1)
                    {
                        throw ErrnoException.Of(Errno.EINVAL);
                    }

                    SetPlain(level, name, v);
                    return;
                case TCP_CORK or TCP_QUICKACK or TCP_USER_TIMEOUT:
                    SetPlain(level, name, v);
                    return;
            }

            throw ErrnoException.Of(Errno.ENOPROTOOPT);
        }

        InetOptions.Set(this, level, name, value);
    }

    public override void Release()
    {
        StreamSocket? other;
        List<SocketMessage> unread;
        List<StreamSocket>? pending = null;
        lock (Gate)
        {
            if (released)
            {
                return;
            }

            released = true;
            unread = [.. queue];
            queue.Clear();
            queued = 0;
            if (listening)
            {
                pending = [.. backlog!];
                backlog!.Clear();
                listening = false;
            }

            other = peer;
            peer = null;
            if (other is not null)
            {
                other.peerGone = true;
                other.rcvShutdown = true;
                if (!Tcp)
                {
                    other.sndShutdown = true;
                }
            }
        }

        Namespace.Unbind(this);
        other?.Notify(PollEvents.All);
        foreach (var message in unread)
        {
            message.Control?.Release();
        }

        if (pending is not null)
        {
            foreach (var socket in pending)
            {
                socket.Release();
            }
        }
    }
}
