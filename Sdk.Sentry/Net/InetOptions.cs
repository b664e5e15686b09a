using static AppKernel.Sentry.Net.SocketConstants;

namespace AppKernel.Sentry.Net;

/// <summary>
/// The SOL_IP and SOL_IPV6 options the loopback stack keeps (IPV6_V6ONLY, TOS, TTL, RECVERR). Unknown
/// ones get Linux's answers: ENOPROTOOPT, except a get at a level IPv4 does not know (EOPNOTSUPP) and any
/// level but SOL_SOCKET on a Unix socket (EOPNOTSUPP both ways).
/// </summary>
internal static class InetOptions
{
    public static int Get(SentrySocket socket, int level, int name, Span<byte> value)
    {
        if (socket.Family == AF_UNIX)
        {
            throw ErrnoException.Of(Errno.EOPNOTSUPP);
        }

        if (socket.Family == AF_INET && level == SOL_IP)
        {
            return name switch
            {
                IP_TOS or IP_RECVERR => SentrySocket.WriteInt(value, PlainOf(socket, level, name, 0)),
                IP_TTL => SentrySocket.WriteInt(value, PlainOf(socket, level, name, 64)),
                _ => throw ErrnoException.Of(Errno.ENOPROTOOPT),
            };
        }

        if (socket.Family == AF_INET6 && level == SOL_IPV6)
        {
            return name switch
            {
                IPV6_V6ONLY => SentrySocket.WriteInt(value, socket.V6Only ? 1 : 0),
                IPV6_RECVERR => SentrySocket.WriteInt(value, PlainOf(socket, level, name, 0)),
                IPV6_UNICAST_HOPS => SentrySocket.WriteInt(value, PlainOf(socket, level, name, 64)),
                _ => throw ErrnoException.Of(Errno.ENOPROTOOPT),
            };
        }

        throw ErrnoException.Of(socket.Family == AF_INET && level != SOL_IP ? Errno.EOPNOTSUPP : Errno.ENOPROTOOPT);
    }

    public static void Set(SentrySocket socket, int level, int name, ReadOnlySpan<byte> value)
    {
        if (socket.Family == AF_UNIX)
        {
            throw ErrnoException.Of(Errno.EOPNOTSUPP);
        }

        if (socket.Family == AF_INET && level == SOL_IP && name is IP_TOS or IP_TTL or IP_RECVERR)
        {
            int v = SentrySocket.ReadInt(value);
            if (name == IP_TTL && (v < -1 || v == 0 || v > 255))
            {
                throw ErrnoException.Of(Errno.EINVAL);
            }

            Plain(socket).Set(level, name, name == IP_TTL && v == -1 ? 64 : v);
            return;
        }

        if (socket.Family == AF_INET6 && level == SOL_IPV6)
        {
            int v = SentrySocket.ReadInt(value);
            switch (name)
            {
                case IPV6_V6ONLY:
                    if (socket.LocalAddress is not null)
                    {
                        throw ErrnoException.Of(Errno.EINVAL);
                    }

                    socket.V6Only = v != 0;
                    return;
                case IPV6_RECVERR or IPV6_UNICAST_HOPS:
                    Plain(socket).Set(level, name, v);
                    return;
            }
        }

        throw ErrnoException.Of(Errno.ENOPROTOOPT);
    }

    private static int PlainOf(SentrySocket socket, int level, int name, int fallback) => Plain(socket).Get(level, name, fallback);

    private static PlainAccess Plain(SentrySocket socket) => new(socket);

    private readonly struct PlainAccess(SentrySocket socket)
    {
        public int Get(int level, int name, int fallback) => socket.PlainOption(level, name, fallback);

        public void Set(int level, int name, int value) => socket.SetPlainOption(level, name, value);
    }
}
