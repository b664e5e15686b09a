using System.Buffers.Binary;
using static AppKernel.Sentry.Net.SocketConstants;

namespace AppKernel.Sentry.Net;

/// <summary>
/// The sandbox's own IPv4/IPv6 stack for network mode <c>none</c>: only the loopback device
/// exists (127.0.0.0/8 and ::1, IPv4-mapped IPv6 where the socket allows it). TCP-like streams
/// and UDP-like datagrams join sockets of this sandbox directly, through port tables with
/// Linux's bind rules (EADDRINUSE, SO_REUSEADDR, SO_REUSEPORT, IPV6_V6ONLY overlap) and
/// ephemeral ports from 32768-60999. Any other destination is ENETUNREACH: nothing reaches the host.
/// </summary>
internal sealed class LoopbackStack : SocketNamespace
{
    private readonly Dictionary<(int Kind, int Port), List<SentrySocket>> ports = new();
    private readonly Dictionary<SentrySocket, Binding> bindings = new(ReferenceEqualityComparer.Instance);

    // Accepted connections: they hold no port of their own, but /proc/net lists them.
    private readonly HashSet<SentrySocket> accepted = new(ReferenceEqualityComparer.Instance);
    private int nextEphemeral = EphemeralFirst + Random.Shared.Next(EphemeralLast - EphemeralFirst);

    /// <summary>An IP address in IPv6 form (IPv4 as ::ffff:a.b.c.d) and a port.</summary>
    public readonly record struct Endpoint(UInt128 Address, int Port)
    {
        public bool IsV4 => (Address >> 32) == 0xFFFF;

        public bool IsUnspecified => Address == 0 || Address == ((UInt128)0xFFFF << 32);

        public bool IsLoopback => Address == 1 || (IsV4 && (uint)Address >> 24 == 127);
    }

    private sealed record Binding(Endpoint Local, bool V6Socket, bool V6Only);

    /// <summary>Bound sockets and accepted connections, for /proc/net.</summary>
    public List<(SentrySocket Socket, Endpoint Local)> Bound()
    {
        lock (Gate)
        {
            var list = new List<(SentrySocket, Endpoint)>();
            foreach (var (socket, binding) in bindings)
            {
                list.Add((socket, binding.Local));
            }

            foreach (var socket in accepted)
            {
                list.Add((socket, Parse(socket.Family, socket.LocalAddress!)));
            }

            return list;
        }
    }

    public static int KindOf(SentrySocket socket) => socket.Type == SOCK_STREAM ? IPPROTO_TCP : IPPROTO_UDP;

    /// <summary>Parses a sockaddr_in/sockaddr_in6 for a socket of <paramref name="family"/> (EINVAL for short addresses, EAFNOSUPPORT for another family).</summary>
    public static Endpoint Parse(int family, ReadOnlySpan<byte> address, bool allowUnspecifiedFamily = false)
    {
        if (family == AF_INET)
        {
            if (address.Length < 16)
            {
                throw ErrnoException.Of(Errno.EINVAL);
            }

            int given = BinaryPrimitives.ReadUInt16LittleEndian(address);
            uint ip = BinaryPrimitives.ReadUInt32BigEndian(address[4..]);
            if (given != AF_INET && !(allowUnspecifiedFamily && given == AF_UNSPEC && ip == 0))
            {
                throw ErrnoException.Of(Errno.EAFNOSUPPORT);
            }

            return new Endpoint(((UInt128)0xFFFF << 32) | ip, BinaryPrimitives.ReadUInt16BigEndian(address[2..]));
        }

        if (address.Length < 24)
        {
            throw ErrnoException.Of(Errno.EINVAL);
        }

        if (BinaryPrimitives.ReadUInt16LittleEndian(address) != AF_INET6)
        {
            throw ErrnoException.Of(Errno.EAFNOSUPPORT);
        }

        return new Endpoint(BinaryPrimitives.ReadUInt128BigEndian(address[8..]), BinaryPrimitives.ReadUInt16BigEndian(address[2..]));
    }

    /// <summary>An endpoint as a socket of <paramref name="family"/> writes it.</summary>
    public static byte[] Format(int family, Endpoint endpoint)
    {
        if (family == AF_INET)
        {
            var v4 = new byte[16];
            BinaryPrimitives.WriteUInt16LittleEndian(v4, AF_INET);
            BinaryPrimitives.WriteUInt16BigEndian(v4.AsSpan(2), (ushort)endpoint.Port);
            BinaryPrimitives.WriteUInt32BigEndian(v4.AsSpan(4), (uint)endpoint.Address);
            return v4;
        }

        var v6 = new byte[28];
        BinaryPrimitives.WriteUInt16LittleEndian(v6, AF_INET6);
        BinaryPrimitives.WriteUInt16BigEndian(v6.AsSpan(2), (ushort)endpoint.Port);
        BinaryPrimitives.WriteUInt128BigEndian(v6.AsSpan(8), endpoint.Address);
        return v6;
    }

    private static Endpoint FromOwnFamily(byte[] address) =>
        Parse(BinaryPrimitives.ReadUInt16LittleEndian(address) == AF_INET ? AF_INET : AF_INET6, address);

    public override byte[] Unnamed(SentrySocket socket) => Format(socket.Family, new Endpoint(socket.Family == AF_INET ? (UInt128)0xFFFF << 32 : 0, 0));

    public override byte[] Bind(SentrySocket socket, ReadOnlySpan<byte> address)
    {
        var endpoint = Parse(socket.Family, address, allowUnspecifiedFamily: true);
        if (socket.Family == AF_INET6 && endpoint.IsV4 && socket.V6Only)
        {
            throw ErrnoException.Of(Errno.EINVAL);
        }

        if (!endpoint.IsUnspecified && !endpoint.IsLoopback)
        {
            throw ErrnoException.Of(Errno.EADDRNOTAVAIL);
        }

        lock (Gate)
        {
            if (socket.LocalAddress is not null)
            {
                throw ErrnoException.Of(Errno.EINVAL);
            }

            return Register(socket, endpoint);
        }
    }

    private byte[] Register(SentrySocket socket, Endpoint endpoint)
    {
        var binding = new Binding(endpoint, socket.Family == AF_INET6, socket.V6Only);
        int kind = KindOf(socket);
        if (endpoint.Port == 0)
        {
            binding = binding with { Local = endpoint with { Port = PickEphemeral(kind) } };
        }
        else if (ports.TryGetValue((kind, endpoint.Port), out var holders))
        {
            foreach (var other in holders)
            {
                if (Conflicts(socket, binding, other, bindings[other], listening: false))
                {
                    throw ErrnoException.Of(Errno.EADDRINUSE);
                }
            }
        }

        if (!ports.TryGetValue((kind, binding.Local.Port), out var list))
        {
            ports[(kind, binding.Local.Port)] = list = new List<SentrySocket>();
        }

        list.Add(socket);
        bindings[socket] = binding;
        var local = Format(socket.Family, binding.Local);
        socket.LocalAddress = local;
        return local;
    }

    /// <summary>listen(2) checks the bind rules again, now that the socket listens (inet_csk_listen_start).</summary>
    public override void CheckListen(SentrySocket socket)
    {
        lock (Gate)
        {
            if (!bindings.TryGetValue(socket, out var binding))
            {
                return;
            }

            foreach (var other in ports[(KindOf(socket), binding.Local.Port)])
            {
                if (other != socket && Conflicts(socket, binding, other, bindings[other], listening: true))
                {
                    throw ErrnoException.Of(Errno.EADDRINUSE);
                }
            }
        }
    }

    private static bool Conflicts(SentrySocket socket, Binding binding, SentrySocket other, Binding existing, bool listening)
    {
        if (!Overlap(binding, existing))
        {
            return false;
        }

        if (socket.ReusePort && other.ReusePort)
        {
            return false;
        }

        if (socket.ReuseAddress && other.ReuseAddress)
        {
            // SO_REUSEADDR shares a TCP port unless the other socket listens.
            return socket.Type == SOCK_STREAM && other.IsListening;
        }

        return true;
    }

    private static bool Overlap(Binding a, Binding b)
    {
        bool wildA = a.Local.IsUnspecified, wildB = b.Local.IsUnspecified;
        if (!wildA)
        {
            return Covers(b, a.Local.Address);
        }

        if (!wildB)
        {
            return Covers(a, b.Local.Address);
        }

        // Two wildcards: IPv4's and IPv6's share the IPv4 space unless the IPv6 one is V6ONLY.
        if (a.V6Socket == b.V6Socket)
        {
            return true;
        }

        return a.V6Socket ? !a.V6Only : !b.V6Only;
    }

    private static bool Covers(Binding binding, UInt128 address)
    {
        var local = binding.Local;
        bool v4 = new Endpoint(address, 0).IsV4;
        if (!local.IsUnspecified)
        {
            return local.Address == address;
        }

        return binding.V6Socket ? !v4 || !binding.V6Only : v4;
    }

    private int PickEphemeral(int kind)
    {
        int span = EphemeralLast - EphemeralFirst + 1;
        for (int i = 0; i < span; i++)
        {
            int port = EphemeralFirst + (nextEphemeral++ - EphemeralFirst) % span;
            if (nextEphemeral > EphemeralLast)
            {
                nextEphemeral = EphemeralFirst;
            }

            if (!ports.TryGetValue((kind, port), out var list) || list.Count == 0)
            {
                return port;
            }
        }

        throw ErrnoException.Of(Errno.EADDRINUSE);
    }

    public override SentrySocket? Lookup(SentrySocket socket, ReadOnlySpan<byte> address, out byte[] canonical)
    {
        var endpoint = Parse(socket.Family, address);
        if (socket.Family == AF_INET6 && endpoint.IsV4 && socket.V6Only)
        {
            throw ErrnoException.Of(Errno.ENETUNREACH);
        }

        if (endpoint.IsUnspecified)
        {
            // Linux sends to INADDR_ANY/in6addr_any as to the loopback address.
            endpoint = endpoint with { Address = endpoint.IsV4 ? ((UInt128)0xFFFF << 32) | 0x7F000001 : 1 };
        }

        if (!endpoint.IsLoopback)
        {
            throw ErrnoException.Of(Errno.ENETUNREACH);
        }

        canonical = Format(socket.Family, endpoint);
        if (endpoint.Port == 0)
        {
            if (socket.Type == SOCK_DGRAM)
            {
                throw ErrnoException.Of(Errno.EINVAL);
            }

            return null;
        }

        lock (Gate)
        {
            if (!ports.TryGetValue((KindOf(socket), endpoint.Port), out var holders))
            {
                return null;
            }

            SentrySocket? wildcard = null;
            foreach (var candidate in holders)
            {
                if (socket.Type == SOCK_STREAM && !candidate.IsListening)
                {
                    continue;
                }

                if (candidate is DatagramSocket { RemoteAddress: { } remote } && !SameEndpoint(remote, socket.LocalAddress))
                {
                    // A connected UDP socket only hears its peer.
                    continue;
                }

                var binding = bindings[candidate];
                if (binding.Local.Address == endpoint.Address)
                {
                    return candidate;
                }

                if (binding.Local.IsUnspecified && Covers(binding, endpoint.Address))
                {
                    wildcard ??= candidate;
                }
            }

            return wildcard;
        }
    }

    private static bool SameEndpoint(byte[] remote, byte[]? local)
    {
        if (local is null)
        {
            return false;
        }

        var a = FromOwnFamily(remote);
        var b = FromOwnFamily(local);
        return a.Port == b.Port && (a.Address == b.Address || b.IsUnspecified);
    }

    public override byte[]? AutoBind(SentrySocket socket, byte[] destination)
    {
        lock (Gate)
        {
            Endpoint? source = null;
            if (destination.Length > 0)
            {
                var target = FromOwnFamily(destination);
                source = new Endpoint(target.IsV4 ? ((UInt128)0xFFFF << 32) | 0x7F000001 : 1, 0);
            }

            if (bindings.TryGetValue(socket, out var binding))
            {
                if (source is { } s && binding.Local.IsUnspecified)
                {
                    socket.LocalAddress = Format(socket.Family, s with { Port = binding.Local.Port });
                }

                return socket.LocalAddress;
            }

            var wildcard = new Endpoint(socket.Family == AF_INET ? (UInt128)0xFFFF << 32 : 0, 0);
            return Register(socket, source ?? wildcard);
        }
    }

    public override void Accepted(SentrySocket server)
    {
        lock (Gate)
        {
            accepted.Add(server);
        }
    }

    public override void Unbind(SentrySocket socket)
    {
        lock (Gate)
        {
            accepted.Remove(socket);
            if (bindings.Remove(socket, out var binding))
            {
                var key = (KindOf(socket), binding.Local.Port);
                var list = ports[key];
                list.Remove(socket);
                if (list.Count == 0)
                {
                    ports.Remove(key);
                }
            }
        }
    }

    public override byte[]? ForReceiver(SentrySocket receiver, byte[]? address) =>
        address is null ? null : Format(receiver.Family, FromOwnFamily(address));

    public override byte[]? AcceptedLocal(SentrySocket listener, byte[] destination) =>
        Format(listener.Family, FromOwnFamily(destination) with { Port = FromOwnFamily(listener.LocalAddress!).Port });
}
