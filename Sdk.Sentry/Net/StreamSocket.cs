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
internal sealed class StreamSocket : PeerSocket<StreamSocket>
{
    private readonly Queue<SocketMessage> queue = new();
    private Queue<StreamSocket>? backlog;
    private int backlogLimit;
    private int queued;
    private bool connected;
    private bool listening;
    private bool rcvShutdown;
    private bool sndShutdown;
    private bool peerGone;
    private bool resetSent;
    private bool connectReported;
    private bool released;
    private bool reset;
    private bool finFirst;
    private SocketCredentials listenCredentials;

    // A TCP connect waiting for room in a full backlog (as a SYN the listener dropped, retried):
    // the listener it waits on, the destination it asked for, and its caller's credentials.
    private StreamSocket? connectingTo;
    private byte[]? connectingDestination;
    private SocketCredentials connectingCredentials;

    // A TCP listener's connectors waiting for room, in arrival order.
    private List<StreamSocket>? waitingConnectors;

    // TCP urgent data, as tcp_sock's copied_seq, urg_seq and urg_data: the stream position of the
    // next byte to read, the position of the byte the latest urgent mark points at, that byte, and
    // whether it is pending or was read with MSG_OOB. The byte stays in the queue: a read skips it
    // unless SO_OOBINLINE is on at the time, and reads never cross the mark.
    private long readSeq;
    private long urgentSeq;
    private byte urgentByte;
    private Urgent urgent;

    private enum Urgent
    {
        None,
        Pending,
        Read,
    }

    // TCP_INFO counters.
    private long bytesSent;
    private long bytesReceived;
    private int segmentsOut;
    private int segmentsIn;

    public StreamSocket(SocketNamespace space, int family, int type, int protocol)
        : base(space, family, type, protocol)
    {
    }

    private bool Records => Type == SOCK_SEQPACKET;

    private bool Tcp => Family != AF_UNIX;

    /// <summary>Whether MSG_OOB carries urgent data here (TCP; Unix keeps Linux's pre-5.15 EOPNOTSUPP).</summary>
    public bool CarriesUrgentData => Tcp;

    public override bool AtUrgentMark => Locked(() => urgent != Urgent.None && urgentSeq == readSeq);

    /// <summary>The next byte to read is an urgent byte a read would skip (tcp_poll's target++).</summary>
    private bool UrgentAtHeadLocked => Tcp && urgent != Urgent.None && urgentSeq == readSeq && !OobInline;

    private int Capacity => Tcp ? Math.Max(ReceiveBufferSize, 2 << 20) : ReceiveBufferSize;

    public override bool IsListening => Locked(() => listening);

    protected override void PairedLocked() => connected = true;

    protected override byte[]? RemoteAddressLocked => connected ? peerAddress : null;

    protected override bool BindRefusedLocked => Tcp && connected;

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

            if (connectingTo is not null)
            {
                // SYN_SENT: tcp_poll reports nothing until the connection is made.
                return ready & (mask | PollEvents.Error | PollEvents.HangUp);
            }

            if ((rcvShutdown && sndShutdown) || !connected)
            {
                ready |= PollEvents.HangUp;
            }

            if (rcvShutdown)
            {
                ready |= PollEvents.In | PollEvents.ReadNormal | PollEvents.ReadHangUp;
            }

            if (queued > (UrgentAtHeadLocked ? 1 : 0) || (Records && queue.Count > 0))
            {
                ready |= PollEvents.In | PollEvents.ReadNormal;
            }

            if (urgent == Urgent.Pending)
            {
                ready |= PollEvents.Priority;
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

        List<StreamSocket>? admitted;
        lock (Gate)
        {
            if (connected || connectingTo is not null || (!Tcp && LocalAddress is null))
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

            // A larger backlog may let waiting connectors in.
            admitted = AdmitWaitingLocked();
        }

        Notify(PollEvents.All);
        foreach (var connector in admitted ?? [])
        {
            connector.Notify(PollEvents.Out | PollEvents.WriteNormal);
        }
    }

    /// <summary>True unless a listening socket's backlog is full (a connect would wait).</summary>
    private bool BacklogHasRoom => Locked(() => !listening || released || backlog!.Count <= backlogLimit);

    public override ISocket Accept()
    {
        StreamSocket accepted;
        List<StreamSocket>? admitted;
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
            admitted = AdmitWaitingLocked();
        }

        // Connectors waiting for room in the backlog hear of it.
        Notify(PollEvents.Out);
        if (admitted is not null)
        {
            Notify(PollEvents.In | PollEvents.ReadNormal);
            foreach (var connector in admitted)
            {
                connector.Notify(PollEvents.Out | PollEvents.WriteNormal);
            }
        }

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

            if (connectingTo is not null)
            {
                // Still waiting for the listener: EALREADY, or a blocking caller waits again.
                throw ErrnoException.Of(nonBlocking ? Errno.EALREADY : Errno.EINPROGRESS);
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
                if (listener.backlog!.Count > listener.backlogLimit)
                {
                    // The accept queue is full: Linux drops the SYN and the client retries; here
                    // the connector waits on the listener until accept makes room (or it closes).
                    connectingTo = listener;
                    connectingDestination = destination;
                    connectingCredentials = CurrentPeerCredentials();
                    (listener.waitingConnectors ??= []).Add(this);
                    server = null!;
                    goto waiting;
                }
            }

            server = JoinLocked(listener, destination, CurrentPeerCredentials());
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

    waiting:
        // Both modes: the layer waits for writability when the caller blocks.
        throw ErrnoException.Of(Errno.EINPROGRESS);
    }

    /// <summary>Makes the connection to <paramref name="listener"/>: the accepting side joins this socket and goes on the backlog (gate held).</summary>
    private StreamSocket JoinLocked(StreamSocket listener, byte[] destination, SocketCredentials credentials)
    {
        var server = new StreamSocket(Namespace, listener.Family, Type, Protocol)
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
        server.PeerCredentials = credentials;
        PeerCredentials = listener.listenCredentials;
        listener.backlog!.Enqueue(server);
        Namespace.Accepted(server);
        return server;
    }

    /// <summary>A listener with room takes its waiting connectors in order (gate held); returns them to notify.</summary>
    private List<StreamSocket>? AdmitWaitingLocked()
    {
        List<StreamSocket>? admitted = null;
        while (waitingConnectors is { Count: > 0 } && listening && backlog!.Count <= backlogLimit)
        {
            var connector = waitingConnectors[0];
            waitingConnectors.RemoveAt(0);
            connector.connectingTo = null;
            connector.JoinLocked(this, connector.connectingDestination!, connector.connectingCredentials);
            connector.connectingDestination = null;
            (admitted ??= []).Add(connector);
        }

        return admitted;
    }

    /// <summary>A listener going away refuses its waiting connectors, as the SYN they retry would be (gate held).</summary>
    private List<StreamSocket>? RefuseWaitingLocked()
    {
        if (waitingConnectors is not { Count: > 0 })
        {
            return null;
        }

        var refused = waitingConnectors;
        waitingConnectors = null;
        foreach (var connector in refused)
        {
            connector.connectingTo = null;
            connector.connectingDestination = null;
            connector.RefuseLocked();
        }

        return refused;
    }

    /// <summary>A connector stops waiting (closed or shut down) (gate held).</summary>
    private void CancelConnectLocked()
    {
        connectingTo?.waitingConnectors?.Remove(this);
        connectingTo = null;
        connectingDestination = null;
    }

    public override void ConnectCompleted(ReadOnlySpan<byte> address)
    {
        lock (Gate)
        {
            if (connected)
            {
                // A blocking connect that waited reports its success itself.
                connectReported = true;
            }
        }
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
        bool urgentSent = false;
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

            if (connectingTo is not null)
            {
                // sk_stream_wait_connect: a send waits for the connection.
                throw ErrnoException.Of(Errno.EAGAIN);
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

            if (Tcp && (flags & MSG_OOB) != 0)
            {
                // tcp_push with MSG_OOB: the urgent pointer follows the last byte sent, so that
                // byte is the urgent one; the receiver's tcp_check_urg takes the newer mark.
                target.MarkUrgentLocked(target.readSeq + target.queued + n - 1, data[n - 1]);
                urgentSent = true;
            }

            target.queue.Enqueue(new SocketMessage(data[..n].ToArray(), null, control));
            target.queued += n;
            bytesSent += n;
            segmentsOut++;
            target.bytesReceived += n;
            target.segmentsIn++;
        }

        if (urgentSent)
        {
            // sk_send_sigurg: the receiving file's owner hears of the new mark.
            if (target.Description?.SignalOwner is { } owner && Kernel.KernelTask.Current?.Kernel is { } kernel)
            {
                owner.SendUrgent(kernel);
            }

            target.Notify(PollEvents.In | PollEvents.ReadNormal | PollEvents.Priority);
            return n;
        }

        target.Notify(PollEvents.In | PollEvents.ReadNormal);
        return n;
    }

    /// <summary>
    /// A new urgent mark at stream position <paramref name="seq"/> (gate held), as tcp_check_urg:
    /// an older urgent byte still at the read point, not inline, leaves the stream; the older
    /// mark is forgotten (its byte, if later in the stream, becomes ordinary data).
    /// </summary>
    private void MarkUrgentLocked(long seq, byte value)
    {
        if (urgent != Urgent.None && urgentSeq == readSeq && queued > 0 && !OobInline)
        {
            var head = queue.Peek();
            head.Offset++;
            if (head.Length == 0)
            {
                queue.Dequeue();
            }

            queued--;
            readSeq++;
        }

        urgent = Urgent.Pending;
        urgentSeq = seq;
        urgentByte = value;
    }

    /// <summary>
    /// recv(MSG_OOB) on TCP (tcp_recv_urg): the pending urgent byte (MSG_PEEK leaves it pending);
    /// EINVAL with SO_OOBINLINE, with none pending or once it was read; ENOTCONN on a listener.
    /// Never waits. A zero-length buffer takes it too, with MSG_TRUNC.
    /// </summary>
    public long ReceiveUrgent(Span<byte> data, int flags, out int messageFlags)
    {
        lock (Gate)
        {
            if (listening)
            {
                throw ErrnoException.Of(Errno.ENOTCONN);
            }

            if (OobInline || urgent != Urgent.Pending)
            {
                throw ErrnoException.Of(Errno.EINVAL);
            }

            if ((flags & MSG_PEEK) == 0)
            {
                urgent = Urgent.Read;
            }

            messageFlags = MSG_OOB;
            if (data.IsEmpty)
            {
                messageFlags |= MSG_TRUNC;
                return 0;
            }

            if ((flags & MSG_TRUNC) == 0)
            {
                data[0] = urgentByte;
            }

            return 1;
        }
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

            if (Tcp && PendingError != 0 && queue.Count == 0)
            {
                // tcp_recvmsg: what was queued before a reset is read first, then the error once.
                var error = (Errno)PendingError;
                PendingError = 0;
                throw ErrnoException.Of(error);
            }

            if (connectingTo is not null)
            {
                throw ErrnoException.Of(Errno.EAGAIN);
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
            if (Tcp)
            {
                copied = ReceiveTcpLocked(data, peek);
            }
            else if (Records)
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
                else
                {
                    // unix_dgram_recvmsg: a peek gets the credentials and its own copies of the files.
                    control = message.Control?.PeekCopy();
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
                        else
                        {
                            // unix_stream_read_generic: a peek gets its own copies of passed files.
                            control = segment.Control?.PeekCopy();
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
                    Consume(copied);
                }
            }
        }

        if (!peek)
        {
            writer?.Notify(PollEvents.Out | PollEvents.WriteNormal);
        }

        return copied;
    }

    /// <summary>
    /// A TCP read (tcp_recvmsg, gate held): it stops before the urgent mark once it has data, and at
    /// the mark skips the urgent byte unless SO_OOBINLINE (a read that only skips it still consumes
    /// it, then waits: EAGAIN, or 0 after the peer's FIN). A read past the mark forgets it.
    /// </summary>
    private int ReceiveTcpLocked(Span<byte> data, bool peek)
    {
        long position = readSeq;
        int copied = 0;
        int consumed = 0;
        bool inline = OobInline;
        foreach (var segment in queue)
        {
            int offset = segment.Offset;
            int end = segment.Data.Length;
            while (offset < end)
            {
                if (copied == data.Length)
                {
                    goto done;
                }

                bool marked = urgent != Urgent.None;
                if (marked && urgentSeq == position)
                {
                    if (copied > 0)
                    {
                        goto done;
                    }

                    if (!inline)
                    {
                        position++;
                        offset++;
                        consumed++;
                        continue;
                    }
                }

                int n = Math.Min(end - offset, data.Length - copied);
                if (marked && urgentSeq > position && urgentSeq - position < n)
                {
                    n = (int)(urgentSeq - position);
                }

                segment.Data.AsSpan(offset, n).CopyTo(data[copied..]);
                copied += n;
                consumed += n;
                offset += n;
                position += n;
            }
        }

    done:
        if (!peek)
        {
            Consume(consumed);
            readSeq += consumed;
            if (urgent != Urgent.None && readSeq > urgentSeq)
            {
                urgent = Urgent.None;
            }
        }

        if (copied == 0 && !rcvShutdown)
        {
            // Only the urgent byte was there: it is gone, and the reader waits for more.
            throw ErrnoException.Of(Errno.EAGAIN);
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
        List<StreamSocket>? refused = null;
        lock (Gate)
        {
            if (Tcp && connectingTo is not null)
            {
                // inet_shutdown of a SYN_SENT socket disconnects it: it stops waiting, unconnected.
                CancelConnectLocked();
                return;
            }

            if (Tcp && !connected && !listening)
            {
                throw ErrnoException.Of(Errno.ENOTCONN);
            }

            if (Tcp && listening)
            {
                if (read)
                {
                    // inet_shutdown on a listener disconnects it: pending connections are reset,
                    // connectors waiting for room refused.
                    listening = false;
                    dropped = [.. backlog!];
                    backlog!.Clear();
                    refused = RefuseWaitingLocked();
                }

                other = null;
            }
            else
            {
                if (write && !sndShutdown && !rcvShutdown)
                {
                    // This side's FIN went first (FIN_WAIT, then TIME_WAIT, for TCP_INFO).
                    finFirst = true;
                }

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
                socket.Close(resetPeer: true);
            }
        }

        foreach (var socket in refused ?? [])
        {
            socket.Notify(PollEvents.All);
        }

        Notify(PollEvents.All);
        other?.Notify(PollEvents.All);
    }

    /// <summary>SIOCINQ: a datagram's length, or the bytes queued (tcp_inq: only those before a pending urgent byte unless inline).</summary>
    public override int InputQueued => Locked(() =>
        Records ? (queue.Count > 0 ? queue.Peek().Length : 0)
        : Tcp && urgent != Urgent.None && !OobInline && urgentSeq >= readSeq && urgentSeq < readSeq + queued ? (int)(urgentSeq - readSeq)
        : queued);

    public override int OutputQueued => Locked(() => peer is null || peerGone ? 0 : peer.queued);

    /// <summary>The TCP state Linux would show (tcp_states.h), for TCP_INFO and /proc/net/tcp.</summary>
    public int TcpState => Locked(() => TcpStateLocked);

    private int TcpStateLocked =>
        listening ? TCP_LISTEN
        : connectingTo is not null ? TCP_SYN_SENT
        : !connected || reset || released ? TCP_CLOSE
        : !sndShutdown && !rcvShutdown ? TCP_ESTABLISHED
        : !sndShutdown ? TCP_CLOSE_WAIT
        : !rcvShutdown ? TCP_FIN_WAIT2 // the loopback peer acknowledges the FIN at once
        : finFirst ? TCP_TIME_WAIT : TCP_CLOSE;

    private const int TCP_ESTABLISHED = 1, TCP_SYN_SENT = 2, TCP_FIN_WAIT2 = 5, TCP_TIME_WAIT = 6, TCP_CLOSE = 7,
        TCP_CLOSE_WAIT = 8, TCP_LISTEN = 10;

    /// <summary>sizeof(struct tcp_info) in Linux 6.1 (up to tcpi_snd_wnd).</summary>
    private const int TcpInfoSize = 232;

    /// <summary>
    /// struct tcp_info as a loopback connection shows it: the state, the MSS and window of the
    /// 64 KiB loopback MTU, no loss or retransmission, and the byte and segment counts; a
    /// listener's accept queue in tcpi_unacked and its limit in tcpi_sacked, as Linux reports them.
    /// </summary>
    private int TcpInfo(Span<byte> value)
    {
        Span<byte> info = stackalloc byte[TcpInfoSize];
        info.Clear();
        lock (Gate)
        {
            int state = TcpStateLocked;
            info[0] = (byte)state;
            bool synced = state is not (TCP_LISTEN or TCP_SYN_SENT) && connected;
            if (synced)
            {
                info[5] = 0x7; // tcpi_options: timestamps, SACK, window scaling
                info[6] = 0x77; // snd_wscale 7, rcv_wscale 7
            }

            static void Put32(Span<byte> info, int offset, long v) => System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(info[offset..], (uint)v);
            static void Put64(Span<byte> info, int offset, ulong v) => System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(info[offset..], v);
            Put32(info, 8, 201000); // tcpi_rto (us)
            Put32(info, 12, synced ? 40000 : 0); // tcpi_ato
            Put32(info, 16, 32768); // tcpi_snd_mss
            Put32(info, 20, 536); // tcpi_rcv_mss
            if (listening)
            {
                Put32(info, 24, backlog!.Count);
                Put32(info, 28, backlogLimit);
            }

            Put32(info, 60, 65535); // tcpi_pmtu
            Put32(info, 64, 65483); // tcpi_rcv_ssthresh
            Put32(info, 68, synced ? 50 : 0); // tcpi_rtt (us)
            Put32(info, 72, synced ? 25 : 250000); // tcpi_rttvar
            Put32(info, 76, int.MaxValue); // tcpi_snd_ssthresh: TCP_INFINITE_SSTHRESH
            Put32(info, 80, 10); // tcpi_snd_cwnd
            Put32(info, 84, 65483); // tcpi_advmss
            Put32(info, 88, 3); // tcpi_reordering
            Put32(info, 96, 65483); // tcpi_rcv_space
            Put64(info, 112, ulong.MaxValue); // tcpi_max_pacing_rate
            Put64(info, 120, (ulong)bytesSent); // tcpi_bytes_acked: the loopback peer has it all
            Put64(info, 128, (ulong)bytesReceived); // tcpi_bytes_received
            Put32(info, 136, segmentsOut); // tcpi_segs_out
            Put32(info, 140, segmentsIn); // tcpi_segs_in
            Put32(info, 148, synced ? 50 : 0); // tcpi_min_rtt
            Put32(info, 152, segmentsIn); // tcpi_data_segs_in
            Put32(info, 156, segmentsOut); // tcpi_data_segs_out
            Put32(info, 192, segmentsOut); // tcpi_delivered
            Put64(info, 200, (ulong)bytesSent); // tcpi_bytes_sent
            Put32(info, 228, synced ? 65483 : 0); // tcpi_snd_wnd
        }

        int n = Math.Min(TcpInfoSize, value.Length);
        info[..n].CopyTo(value);
        return n;
    }

    protected override int GetProtocolOption(int level, int name, Span<byte> value)
    {
        if (Tcp && level == SOL_TCP)
        {
            return name switch
            {
                TCP_INFO => TcpInfo(value),
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

    public override void Release() => Close(resetPeer: false);

    /// <summary>
    /// The last close. A TCP socket closed with unread data, or with SO_LINGER on and a zero
    /// timeout, resets the connection (tcp_close): the peer's next recv or send gets ECONNRESET
    /// (EPIPE if it had already read this side's FIN), once, after the data already queued for it;
    /// a listener's connections not yet accepted are reset too, its waiting connectors refused.
    /// </summary>
    private void Close(bool resetPeer)
    {
        StreamSocket? other;
        List<SocketMessage> unread;
        List<StreamSocket>? pending = null;
        List<StreamSocket>? refused = null;
        lock (Gate)
        {
            if (released)
            {
                return;
            }

            released = true;
            bool hadUnread = queued > 0;
            unread = [.. queue];
            queue.Clear();
            queued = 0;
            CancelConnectLocked();
            if (listening)
            {
                pending = [.. backlog!];
                backlog!.Clear();
                listening = false;
                refused = RefuseWaitingLocked();
            }

            other = peer;
            peer = null;
            if (other is not null)
            {
                bool lingerZero = Linger.OnOff != 0 && Linger.Seconds == 0;
                if (Tcp && !other.peerGone && (resetPeer || hadUnread || lingerZero) && !(rcvShutdown && sndShutdown && other.rcvShutdown && other.sndShutdown))
                {
                    other.PendingError = (int)(sndShutdown ? Errno.EPIPE : Errno.ECONNRESET);
                    other.reset = true;
                    other.sndShutdown = true;
                }

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

        foreach (var socket in pending ?? [])
        {
            socket.Close(resetPeer: true);
        }

        foreach (var socket in refused ?? [])
        {
            socket.Notify(PollEvents.All);
        }
    }

    /// <summary>Takes <paramref name="count"/> bytes off the front of the receive queue (the caller holds the lock).</summary>
    private void Consume(int count)
    {
        int left = count;
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

        queued -= count;
    }
}
