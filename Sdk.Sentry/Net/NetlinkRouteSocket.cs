using System.Buffers.Binary;
using System.Text;
using AppKernel.Networking;
using AppKernel.Vfs;
using static AppKernel.Sentry.Net.SocketConstants;

namespace AppKernel.Sentry.Net;

/// <summary>
/// A minimal NETLINK_ROUTE socket (rtnetlink(7)): RTM_GETLINK and RTM_GETADDR dumps describe the
/// sandbox's one device, <c>lo</c> with 127.0.0.1/8 and ::1/128, so getifaddrs and if_nameindex
/// work; RTM_GETROUTE and RTM_GETNEIGH answer as a network namespace with only <c>lo</c> up does
/// (NetlinkRouteSocket.Routes.cs). Other requests are answered with an NLMSG_ERROR of EOPNOTSUPP;
/// nothing is ever changed.
/// Replies come from the kernel's address (port id 0), one datagram per dump plus NLMSG_DONE.
/// </summary>
internal sealed partial class NetlinkRouteSocket : SentrySocket
{
    private const ushort NLMSG_ERROR = 2, NLMSG_DONE = 3;
    private const ushort RTM_NEWLINK = 16, RTM_GETLINK = 18, RTM_NEWADDR = 20, RTM_GETADDR = 22;
    private const ushort NLM_F_REQUEST = 1, NLM_F_MULTI = 2, NLM_F_ACK = 4, NLM_F_DUMP = 0x300;
    private const int HeaderSize = 16;
    private static int nextPortId;

    private readonly Queue<byte[]> replies = new();
    private uint portId;

    public NetlinkRouteSocket(SocketNamespace space, int type)
        : base(space, AF_NETLINK, type, 0)
    {
    }

    public override bool IsListening => false;

    private static byte[] KernelAddress => [AF_NETLINK, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];

    private byte[] OwnAddress()
    {
        var address = new byte[12];
        BinaryPrimitives.WriteUInt16LittleEndian(address, AF_NETLINK);
        BinaryPrimitives.WriteUInt32LittleEndian(address.AsSpan(4), portId);
        return address;
    }

    private void EnsurePortId()
    {
        if (portId == 0)
        {
            // Linux's autobind gives the first socket of a process its pid and later ones negative
            // numbers; here every socket gets a distinct negative one.
            portId = (uint)(-4096 - Interlocked.Increment(ref nextPortId));
            LocalAddress = OwnAddress();
        }
    }

    public override PollEvents Poll(PollEvents mask)
    {
        lock (Gate)
        {
            var ready = PollEvents.Out | PollEvents.WriteNormal;
            if (replies.Count > 0)
            {
                ready |= PollEvents.In | PollEvents.ReadNormal;
            }

            return ready & (mask | PollEvents.Error | PollEvents.HangUp);
        }
    }

    public override void Bind(ReadOnlySpan<byte> address)
    {
        if (address.Length < 12 || BinaryPrimitives.ReadUInt16LittleEndian(address) != AF_NETLINK)
        {
            throw ErrnoException.Of(Errno.EINVAL);
        }

        uint groups = BinaryPrimitives.ReadUInt32LittleEndian(address[8..]);
        if (groups != 0)
        {
            // Multicast groups need notifications this stack never sends; joining them needs no privilege on Linux, so accept and stay silent.
        }

        lock (Gate)
        {
            uint wanted = BinaryPrimitives.ReadUInt32LittleEndian(address[4..]);
            if (wanted != 0 && portId == 0)
            {
                portId = wanted;
                LocalAddress = OwnAddress();
            }

            EnsurePortId();
        }
    }

    public override void Listen(int backlog) => throw ErrnoException.Of(Errno.EOPNOTSUPP);

    public override ISocket Accept() => throw ErrnoException.Of(Errno.EOPNOTSUPP);

    public override void Connect(ReadOnlySpan<byte> address, bool nonBlocking)
    {
        if (address.Length < 12 || BinaryPrimitives.ReadUInt16LittleEndian(address) != AF_NETLINK)
        {
            throw ErrnoException.Of(Errno.EINVAL);
        }

        lock (Gate)
        {
            EnsurePortId();
        }
    }

    public override int GetPeerAddress(Span<byte> address) => CopyAddress(KernelAddress, address);

    public override long SendMessage(ReadOnlySpan<byte> data, ReadOnlySpan<byte> address, int flags, SocketControl? control)
    {
        if (!address.IsEmpty && (address.Length < 12 || BinaryPrimitives.ReadUInt16LittleEndian(address) != AF_NETLINK))
        {
            throw ErrnoException.Of(Errno.EINVAL);
        }

        control?.Release();
        lock (Gate)
        {
            EnsurePortId();
            int offset = 0;
            while (offset + HeaderSize <= data.Length)
            {
                var message = data[offset..];
                uint length = BinaryPrimitives.ReadUInt32LittleEndian(message);
                if (length < HeaderSize || length > message.Length)
                {
                    break;
                }

                Answer(message[..(int)length]);
                offset += (int)((length + 3) & ~3u);
            }
        }

        Notify(PollEvents.In | PollEvents.ReadNormal);
        return data.Length;
    }

    private void Answer(ReadOnlySpan<byte> request)
    {
        ushort type = BinaryPrimitives.ReadUInt16LittleEndian(request[4..]);
        ushort flags = BinaryPrimitives.ReadUInt16LittleEndian(request[6..]);
        uint sequence = BinaryPrimitives.ReadUInt32LittleEndian(request[8..]);
        if ((flags & NLM_F_REQUEST) == 0)
        {
            return;
        }

        bool dump = (flags & NLM_F_DUMP) == NLM_F_DUMP;
        if (dump && type is RTM_GETLINK or RTM_GETADDR)
        {
            var batch = new List<byte>();
            if (type == RTM_GETLINK)
            {
                batch.AddRange(Link(sequence));
            }
            else
            {
                int family = request.Length > HeaderSize ? request[HeaderSize] : 0;
                if (family is 0 or AF_INET)
                {
                    batch.AddRange(Address(sequence, AF_INET, 8, [127, 0, 0, 1]));
                }

                if (family is 0 or AF_INET6)
                {
                    batch.AddRange(Address(sequence, AF_INET6, 128, [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]));
                }
            }

            replies.Enqueue([.. batch]);
            var done = Header(NLMSG_DONE, NLM_F_MULTI, sequence, 4);
            replies.Enqueue([.. done, 0, 0, 0, 0]);
            return;
        }

        if (type is RTM_GETROUTE or RTM_GETNEIGH)
        {
            if (AnswerRoutes(request, type, dump, sequence) is { } routeError)
            {
                ReplyError(request, sequence, routeError);
            }

            return;
        }

        // Everything else: an error reply carrying the request's header (and an ack of 0 is never due).
        ReplyError(request, sequence, Errno.EOPNOTSUPP);
    }

    private void ReplyError(ReadOnlySpan<byte> request, uint sequence, Errno errno)
    {
        var error = new List<byte>(Header(NLMSG_ERROR, 0, sequence, 4 + HeaderSize));
        var code = new byte[4];
        BinaryPrimitives.WriteInt32LittleEndian(code, -(int)errno);
        error.AddRange(code);
        error.AddRange(request[..HeaderSize].ToArray());
        replies.Enqueue([.. error]);
    }

    private byte[] Header(ushort type, ushort flags, uint sequence, int payload)
    {
        var header = new byte[HeaderSize];
        BinaryPrimitives.WriteUInt32LittleEndian(header, (uint)(HeaderSize + payload));
        BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(4), type);
        BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(6), flags);
        BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(8), sequence);
        BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(12), portId);
        return header;
    }

    private static void Attribute(List<byte> body, ushort type, ReadOnlySpan<byte> value)
    {
        var header = new byte[4];
        BinaryPrimitives.WriteUInt16LittleEndian(header, (ushort)(4 + value.Length));
        BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(2), type);
        body.AddRange(header);
        body.AddRange(value.ToArray());
        while (body.Count % 4 != 0)
        {
            body.Add(0);
        }
    }

    private static byte[] U32(uint value)
    {
        var bytes = new byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(bytes, value);
        return bytes;
    }

    private byte[] Link(uint sequence)
    {
        // struct ifinfomsg, then IFLA_* attributes.
        var body = new List<byte>();
        var info = new byte[16];
        BinaryPrimitives.WriteUInt16LittleEndian(info.AsSpan(2), 772); // ARPHRD_LOOPBACK
        BinaryPrimitives.WriteInt32LittleEndian(info.AsSpan(4), NetDevices.LoopbackIndex);
        BinaryPrimitives.WriteUInt32LittleEndian(info.AsSpan(8), 0x10049); // UP, LOOPBACK, RUNNING, LOWER_UP
        body.AddRange(info);
        Attribute(body, 3, Encoding.ASCII.GetBytes(NetDevices.LoopbackName + "\0")); // IFLA_IFNAME
        Attribute(body, 4, U32(NetDevices.LoopbackMtu)); // IFLA_MTU
        Attribute(body, 13, U32(1000)); // IFLA_TXQLEN
        Attribute(body, 16, [0]); // IFLA_OPERSTATE: unknown, as Linux's lo
        Attribute(body, 1, new byte[6]); // IFLA_ADDRESS
        Attribute(body, 2, new byte[6]); // IFLA_BROADCAST
        return [.. Header(RTM_NEWLINK, NLM_F_MULTI, sequence, body.Count), .. body];
    }

    private byte[] Address(uint sequence, int family, byte prefix, byte[] address)
    {
        // struct ifaddrmsg, then IFA_* attributes.
        var body = new List<byte> { (byte)family, prefix, 0x80, 254 }; // IFA_F_PERMANENT, RT_SCOPE_HOST
        body.AddRange(U32(NetDevices.LoopbackIndex));
        Attribute(body, 1, address); // IFA_ADDRESS
        if (family == AF_INET)
        {
            Attribute(body, 2, address); // IFA_LOCAL
            Attribute(body, 3, Encoding.ASCII.GetBytes(NetDevices.LoopbackName + "\0")); // IFA_LABEL
        }

        Attribute(body, 8, U32(0x80)); // IFA_FLAGS
        return [.. Header(RTM_NEWADDR, NLM_F_MULTI, sequence, body.Count), .. body];
    }

    public override long ReceiveMessage(Span<byte> data, int flags, out byte[]? sender, out SocketControl? control, out int messageFlags)
    {
        control = null;
        messageFlags = 0;
        lock (Gate)
        {
            if (replies.Count == 0)
            {
                sender = null;
                throw ErrnoException.Of(Errno.EAGAIN);
            }

            var reply = (flags & MSG_PEEK) != 0 ? replies.Peek() : replies.Dequeue();
            int n = Math.Min(reply.Length, data.Length);
            reply.AsSpan(0, n).CopyTo(data);
            if (reply.Length > data.Length)
            {
                messageFlags |= MSG_TRUNC;
            }

            sender = KernelAddress;
            return (flags & MSG_TRUNC) != 0 ? reply.Length : n;
        }
    }

    public override void Shutdown(int how)
    {
        if (how is < SHUT_RD or > SHUT_RDWR)
        {
            throw ErrnoException.Of(Errno.EINVAL);
        }
    }

    public override int InputQueued
    {
        get
        {
            lock (Gate)
            {
                return replies.Count > 0 ? replies.Peek().Length : 0;
            }
        }
    }

    public override int OutputQueued => 0;

    public override void Release()
    {
        lock (Gate)
        {
            replies.Clear();
        }
    }
}
