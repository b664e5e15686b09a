using System.Buffers.Binary;
using AppKernel.Vfs;
using static AppKernel.Sentry.Net.SocketConstants;

namespace AppKernel.Sentry.Net;

// The routing table of a network namespace whose only device is lo, as Linux builds it: the
// local table holds 127.0.0.0/8, 127.0.0.1, the 127.255.255.255 broadcast and ::1; the main table
// is empty. `ip route get` answers for loopback destinations and is ENETUNREACH for the rest;
// the neighbour table is empty.
internal sealed partial class NetlinkRouteSocket
{
    private const ushort RTM_NEWROUTE = 24, RTM_GETROUTE = 26, RTM_GETNEIGH = 30;
    private const ushort RTA_DST = 1, RTA_SRC = 2, RTA_OIF = 4, RTA_PRIORITY = 6, RTA_PREFSRC = 7, RTA_TABLE = 15, RTA_PREF = 20, RTA_UID = 25;
    private const byte RT_TABLE_MAIN = 254, RT_TABLE_LOCAL = 255, RTPROT_KERNEL = 2;
    private const byte RT_SCOPE_UNIVERSE = 0, RT_SCOPE_LINK = 253, RT_SCOPE_HOST = 254;
    private const byte RTN_LOCAL = 2, RTN_BROADCAST = 3;
    private const uint RTM_F_CLONED = 0x200, RTCF_LOCAL = 0x80000000;
    private const int RouteMessageSize = 12;

    private static readonly byte[] Loopback4 = [127, 0, 0, 1];
    private static readonly byte[] Loopback6 = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];

    /// <summary>Answers RTM_GETROUTE and RTM_GETNEIGH: null when replied, otherwise the errno to send back.</summary>
    private Errno? AnswerRoutes(ReadOnlySpan<byte> request, ushort type, bool dump, uint sequence)
    {
        int family = request.Length > HeaderSize ? request[HeaderSize] : 0;
        if (dump)
        {
            var batch = new List<byte>();
            if (type == RTM_GETROUTE)
            {
                if (family is 0 or AF_INET)
                {
                    batch.AddRange(Route(sequence, NLM_F_MULTI, AF_INET, 8, [127, 0, 0, 0], RT_TABLE_LOCAL, RT_SCOPE_HOST, RTN_LOCAL, Loopback4, priority: null, flags: 0));
                    batch.AddRange(Route(sequence, NLM_F_MULTI, AF_INET, 32, Loopback4, RT_TABLE_LOCAL, RT_SCOPE_HOST, RTN_LOCAL, Loopback4, priority: null, flags: 0));
                    batch.AddRange(Route(sequence, NLM_F_MULTI, AF_INET, 32, [127, 255, 255, 255], RT_TABLE_LOCAL, RT_SCOPE_LINK, RTN_BROADCAST, Loopback4, priority: null, flags: 0));
                }

                if (family is 0 or AF_INET6)
                {
                    batch.AddRange(Route(sequence, NLM_F_MULTI, AF_INET6, 128, Loopback6, RT_TABLE_LOCAL, RT_SCOPE_UNIVERSE, RTN_LOCAL, null, priority: 0, flags: 0));
                }
            }

            if (batch.Count > 0)
            {
                replies.Enqueue([.. batch]);
            }

            var done = Header(NLMSG_DONE, NLM_F_MULTI, sequence, 4);
            replies.Enqueue([.. done, 0, 0, 0, 0]);
            return null;
        }

        if (type != RTM_GETROUTE || request.Length < HeaderSize + RouteMessageSize)
        {
            return Errno.EINVAL;
        }

        // `ip route get`: the destination attribute decides; a loopback address is delivered locally.
        byte[]? destination = FindAttribute(request[(HeaderSize + RouteMessageSize)..], RTA_DST);
        bool local = family switch
        {
            AF_INET => destination is { Length: 4 } && destination[0] == 127,
            AF_INET6 => destination is { Length: 16 } && destination.AsSpan().SequenceEqual(Loopback6),
            _ => false,
        };
        if (!local)
        {
            return family is AF_INET or AF_INET6 ? Errno.ENETUNREACH : Errno.EAFNOSUPPORT;
        }

        // IPv4 answers with a cached route of the main table, IPv6 with the local table's own entry.
        if (family == AF_INET)
        {
            replies.Enqueue(Route(sequence, 0, family, 32, destination!, RT_TABLE_MAIN, RT_SCOPE_UNIVERSE, RTN_LOCAL, Loopback4,
                priority: null, flags: RTM_F_CLONED | RTCF_LOCAL, uid: (uint)(Kernel.KernelTask.Current?.Credentials.RealUid ?? 0)));
        }
        else
        {
            replies.Enqueue(Route(sequence, 0, family, 128, destination!, RT_TABLE_LOCAL, RT_SCOPE_UNIVERSE, RTN_LOCAL, Loopback6,
                priority: 0, flags: 0, fromAny: true));
        }

        return null;
    }

    private byte[] Route(uint sequence, ushort messageFlags, int family, byte prefix, byte[] destination, byte table, byte scope, byte type,
        byte[]? source, uint? priority, uint flags, uint? uid = null, bool fromAny = false)
    {
        // struct rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags.
        var body = new List<byte> { (byte)family, prefix, fromAny ? (byte)(destination.Length * 8) : (byte)0, 0, table, (flags & RTM_F_CLONED) == 0 ? RTPROT_KERNEL : (byte)0, scope, type };
        body.AddRange(U32(flags));
        Attribute(body, RTA_TABLE, U32(table));
        Attribute(body, RTA_DST, destination);
        if (fromAny)
        {
            Attribute(body, RTA_SRC, new byte[destination.Length]);
        }

        if (priority is { } metric)
        {
            Attribute(body, RTA_PRIORITY, U32(metric));
        }

        if (source is not null)
        {
            Attribute(body, RTA_PREFSRC, source);
        }

        Attribute(body, RTA_OIF, U32((uint)NetDevices.LoopbackIndex));
        if (family == AF_INET6)
        {
            Attribute(body, RTA_PREF, [0]); // medium
        }

        if (uid is { } user)
        {
            Attribute(body, RTA_UID, U32(user));
        }

        return [.. Header(RTM_NEWROUTE, messageFlags, sequence, body.Count), .. body];
    }

    private static byte[]? FindAttribute(ReadOnlySpan<byte> attributes, ushort wanted)
    {
        while (attributes.Length >= 4)
        {
            int length = BinaryPrimitives.ReadUInt16LittleEndian(attributes);
            ushort type = BinaryPrimitives.ReadUInt16LittleEndian(attributes[2..]);
            if (length < 4 || length > attributes.Length)
            {
                return null;
            }

            if (type == wanted)
            {
                return attributes[4..length].ToArray();
            }

            attributes = attributes[Math.Min(attributes.Length, (length + 3) & ~3)..];
        }

        return null;
    }
}
