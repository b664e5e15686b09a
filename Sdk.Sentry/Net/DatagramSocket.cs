using AppKernel.Networking;
using AppKernel.Vfs;
using static AppKernel.Sentry.Net.SocketConstants;

namespace AppKernel.Sentry.Net;

/// <summary>
/// A datagram socket of the Sentry: Unix SOCK_DGRAM and the loopback stack's UDP. Each send is
/// one message in the receiver's queue, with the sender's address; a read takes one message
/// and drops what does not fit (MSG_TRUNC). A full Unix receiver makes senders wait (or
/// EAGAIN); UDP drops instead, as Linux does. A connected socket sends to its peer by default
/// and (Unix) only takes messages from it.
/// </summary>
internal sealed class DatagramSocket : PeerSocket<DatagramSocket>
{
    private readonly Queue<SocketMessage> queue = new();
    private readonly HashSet<DatagramSocket> blockedSenders = new();
    private int queued;
    private bool rcvShutdown;
    private bool sndShutdown;
    private bool sendBlocked;
    private bool released;

    public DatagramSocket(SocketNamespace space, int family, int type, int protocol)
        : base(space, family, type, protocol)
    {
    }

    private bool Udp => Family != AF_UNIX;

    public override bool IsListening => false;

    public override PollEvents Poll(PollEvents mask)
    {
        PollEvents ready = 0;
        lock (Gate)
        {
            if (PendingError != 0)
            {
                ready |= PollEvents.Error;
            }

            if (rcvShutdown && sndShutdown)
            {
                ready |= PollEvents.HangUp;
            }

            if (rcvShutdown)
            {
                ready |= PollEvents.In | PollEvents.ReadNormal | PollEvents.ReadHangUp;
            }

            if (queue.Count > 0)
            {
                ready |= PollEvents.In | PollEvents.ReadNormal;
            }

            bool writable = !sendBlocked && (Udp || peer is null || peer.released || peer.queued < peer.ReceiveBufferSize);
            if (writable)
            {
                ready |= PollEvents.Out | PollEvents.WriteNormal | PollEvents.WriteBand;
            }
        }

        return ready & (mask | PollEvents.Error | PollEvents.HangUp);
    }

    public override void Listen(int backlog) => throw ErrnoException.Of(Errno.EOPNOTSUPP);

    public override ISocket Accept() => throw ErrnoException.Of(Errno.EOPNOTSUPP);

    public override void Connect(ReadOnlySpan<byte> address, bool nonBlocking)
    {
        if (address.Length >= 2 && BitConverter.ToUInt16(address) == AF_UNSPEC)
        {
            // Dissolve the association (connect(2) with AF_UNSPEC).
            lock (Gate)
            {
                peer = null;
                peerAddress = null;
            }

            return;
        }

        var target = Namespace.Lookup(this, address, out var destination);
        if (!Udp && target is not DatagramSocket)
        {
            throw ErrnoException.Of(target is null ? Errno.ECONNREFUSED : Errno.EPROTOTYPE);
        }

        if (Udp)
        {
            Namespace.AutoBind(this, destination);
        }

        lock (Gate)
        {
            peer = target as DatagramSocket;
            peerAddress = Udp ? destination : (target!.LocalAddress ?? destination);
            if (!Udp)
            {
                PeerCredentials = SocketCredentials.None;
            }
        }

        Notify(PollEvents.Out | PollEvents.WriteNormal);
    }

    public override int GetPeerAddress(Span<byte> address)
    {
        byte[]? remote;
        lock (Gate)
        {
            remote = peerAddress ?? throw ErrnoException.Of(Errno.ENOTCONN);
        }

        return CopyAddress(remote, address);
    }

    public override long SendMessage(ReadOnlySpan<byte> data, ReadOnlySpan<byte> address, int flags, SocketControl? control)
    {
        DatagramSocket? target;
        byte[] destination;
        lock (Gate)
        {
            if (sndShutdown)
            {
                throw ErrnoException.Of(Errno.EPIPE);
            }

            if (PendingError != 0)
            {
                var error = (Errno)PendingError;
                PendingError = 0;
                throw ErrnoException.Of(error);
            }

            if (address.IsEmpty)
            {
                if (peerAddress is null)
                {
                    throw ErrnoException.Of(Udp ? Errno.EDESTADDRREQ : Errno.ENOTCONN);
                }

                destination = peerAddress;
                target = peer;
            }
            else
            {
                destination = [];
                target = null;
            }

            if (data.Length > (Udp ? 65507 : SendBufferSize - 32))
            {
                throw ErrnoException.Of(Errno.EMSGSIZE);
            }
        }

        if (Udp && LocalAddress is null)
        {
            Namespace.AutoBind(this, []);
        }

        if (!address.IsEmpty)
        {
            target = Namespace.Lookup(this, address, out destination) as DatagramSocket;
            if (!Udp && target is null)
            {
                throw ErrnoException.Of(Errno.ECONNREFUSED);
            }
        }
        else if (Udp && target is null)
        {
            target = Namespace.Lookup(this, destination, out destination) as DatagramSocket;
        }

        if (Udp && LocalAddress is null)
        {
            Namespace.AutoBind(this, []);
        }

        lock (Gate)
        {
            if (target is null)
            {
                // Nobody on that port: the datagram is lost. A connected socket hears of it (ICMP port unreachable).
                if (Udp && peerAddress is not null && address.IsEmpty)
                {
                    PendingError = (int)Errno.ECONNREFUSED;
                }

                control?.Release();
                return data.Length;
            }

            if (target.released)
            {
                throw ErrnoException.Of(Errno.ECONNREFUSED);
            }

            if (!Udp && target.peer is not null && target.peer != this)
            {
                // A connected Unix datagram socket only takes messages from its peer.
                throw ErrnoException.Of(Errno.EPERM);
            }

            if (target.rcvShutdown && !Udp)
            {
                throw ErrnoException.Of(Errno.EPIPE);
            }

            if (target.queued + data.Length > target.ReceiveBufferSize && target.queue.Count > 0)
            {
                if (Udp)
                {
                    control?.Release();
                    return data.Length;
                }

                sendBlocked = true;
                target.blockedSenders.Add(this);
                throw ErrnoException.Of(Errno.EAGAIN);
            }

            var sender = Namespace.ForReceiver(target, LocalAddress);
            target.queue.Enqueue(new SocketMessage(data.ToArray(), sender, control));
            target.queued += data.Length;
        }

        target.Notify(PollEvents.In | PollEvents.ReadNormal);
        return data.Length;
    }

    public override long ReceiveMessage(Span<byte> data, int flags, out byte[]? sender, out SocketControl? control, out int messageFlags)
    {
        sender = null;
        control = null;
        messageFlags = 0;
        bool peek = (flags & MSG_PEEK) != 0;
        DatagramSocket[]? wake = null;
        long result;
        lock (Gate)
        {
            if (PendingError != 0 && Udp)
            {
                var error = (Errno)PendingError;
                PendingError = 0;
                throw ErrnoException.Of(error);
            }

            if (queue.Count == 0)
            {
                if (rcvShutdown)
                {
                    return 0;
                }

                throw ErrnoException.Of(Errno.EAGAIN);
            }

            var message = queue.Peek();
            int n = Math.Min(message.Length, data.Length);
            message.Data.AsSpan(0, n).CopyTo(data);
            if (message.Length > data.Length)
            {
                messageFlags |= MSG_TRUNC;
            }

            sender = message.Sender;
            if (peek)
            {
                // unix_dgram_recvmsg: a peek gets the credentials and its own copies of the files.
                control = message.Control?.PeekCopy();
            }
            else
            {
                queue.Dequeue();
                queued -= message.Length;
                control = message.Control;
                if (blockedSenders.Count > 0)
                {
                    wake = [.. blockedSenders];
                    blockedSenders.Clear();
                    foreach (var s in wake)
                    {
                        s.sendBlocked = false;
                    }
                }
            }

            result = (flags & MSG_TRUNC) != 0 ? message.Length : n;
        }

        Notify(PollEvents.Out | PollEvents.WriteNormal);
        if (wake is not null)
        {
            foreach (var s in wake)
            {
                s.Notify(PollEvents.Out | PollEvents.WriteNormal);
            }
        }

        return result;
    }

    public override void Shutdown(int how)
    {
        if (how is < SHUT_RD or > SHUT_RDWR)
        {
            throw ErrnoException.Of(Errno.EINVAL);
        }

        DatagramSocket? other;
        lock (Gate)
        {
            if (Udp && peerAddress is null)
            {
                throw ErrnoException.Of(Errno.ENOTCONN);
            }

            rcvShutdown |= how != SHUT_WR;
            sndShutdown |= how != SHUT_RD;
            other = Udp ? null : peer;
            if (other is not null && other.peer == this)
            {
                other.rcvShutdown |= how != SHUT_RD;
                other.sndShutdown |= how != SHUT_WR;
            }
        }

        Notify(PollEvents.All);
        other?.Notify(PollEvents.All);
    }

    public override int InputQueued => Locked(() => queue.Count > 0 ? queue.Peek().Length : 0);

    public override int OutputQueued => 0;

    protected override int GetProtocolOption(int level, int name, Span<byte> value) => InetOptions.Get(this, level, name, value);

    protected override void SetProtocolOption(int level, int name, ReadOnlySpan<byte> value) => InetOptions.Set(this, level, name, value);

    public override void Release()
    {
        List<SocketMessage> unread;
        DatagramSocket[] wake;
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
            wake = [.. blockedSenders];
            blockedSenders.Clear();
            foreach (var s in wake)
            {
                s.sendBlocked = false;
            }

            if (peer is not null && peer.peer == this && !Udp)
            {
                // A Unix peer that was connected to this socket hears of its end (ECONNREFUSED on its next send).
                peer.PendingError = 0;
            }
        }

        Namespace.Unbind(this);
        foreach (var s in wake)
        {
            s.Notify(PollEvents.All);
        }

        foreach (var message in unread)
        {
            message.Control?.Release();
        }
    }
}
