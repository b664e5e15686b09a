using AppKernel.Networking;
using static AppKernel.Sentry.Net.SocketConstants;

namespace AppKernel.Sentry.Net;

/// <summary>
/// A sandbox's networking: the Unix namespace, the loopback stack, and any network stacks the
/// host registered (<c>AddNetworkStack&lt;T&gt;()</c>), which are asked first for the families
/// they serve. socket(2)'s family, type and protocol rules are Linux's for an unprivileged
/// process (no CAP_NET_RAW: raw and packet sockets are EPERM; ping sockets EACCES).
/// </summary>
internal sealed class Network
{
    public const int NETLINK_ROUTE = 0;

    public Network(IReadOnlyList<INetworkStack> stacks)
    {
        Stacks = stacks;
    }

    public UnixNamespace Unix { get; } = new();

    public LoopbackStack Loopback { get; } = new();

    /// <summary>Plugin stacks, consulted in order before the built-in ones.</summary>
    public IReadOnlyList<INetworkStack> Stacks { get; }

    /// <summary>Makes a socket; <paramref name="type"/> has SOCK_NONBLOCK/SOCK_CLOEXEC removed.</summary>
    public ISocket Create(int family, int type, int protocol)
    {
        if (family is < 0 or >= AF_MAX)
        {
            throw ErrnoException.Of(Errno.EAFNOSUPPORT);
        }

        if (type is <= 0 or >= SOCK_MAX)
        {
            throw ErrnoException.Of(Errno.EINVAL);
        }

        foreach (var stack in Stacks)
        {
            if (stack.Supports(family, type, protocol))
            {
                return stack.CreateSocket(family, type, protocol);
            }
        }

        switch (family)
        {
            case AF_UNIX:
                if (protocol != 0 && protocol != AF_UNIX)
                {
                    throw ErrnoException.Of(Errno.EPROTONOSUPPORT);
                }

                return type switch
                {
                    SOCK_STREAM or SOCK_SEQPACKET => new StreamSocket(Unix, AF_UNIX, type, 0),
                    SOCK_DGRAM or SOCK_RAW => new DatagramSocket(Unix, AF_UNIX, SOCK_DGRAM, 0),
                    _ => throw ErrnoException.Of(Errno.ESOCKTNOSUPPORT),
                };
            case AF_INET or AF_INET6:
                return CreateInet(family, type, protocol);
            case AF_PACKET:
                throw ErrnoException.Of(Errno.EPERM);
            case AF_NETLINK:
                if (type is not (SOCK_RAW or SOCK_DGRAM))
                {
                    throw ErrnoException.Of(Errno.ESOCKTNOSUPPORT);
                }

                if (protocol is < 0 or >= 32)
                {
                    throw ErrnoException.Of(Errno.EPROTONOSUPPORT);
                }

                if (protocol != NETLINK_ROUTE)
                {
                    // Only NETLINK_ROUTE is built: other netlink families are as a kernel without them.
                    throw ErrnoException.Of(Errno.EPROTONOSUPPORT);
                }

                return new NetlinkRouteSocket(Unix, type);
            default:
                throw ErrnoException.Of(Errno.EAFNOSUPPORT);
        }
    }

    private SentrySocket CreateInet(int family, int type, int protocol)
    {
        switch (type)
        {
            case SOCK_STREAM:
                if (protocol is 0 or IPPROTO_TCP)
                {
                    return new StreamSocket(Loopback, family, SOCK_STREAM, IPPROTO_TCP);
                }

                throw ErrnoException.Of(Errno.EPROTONOSUPPORT);
            case SOCK_DGRAM:
                if (protocol is 0 or IPPROTO_UDP)
                {
                    return new DatagramSocket(Loopback, family, SOCK_DGRAM, IPPROTO_UDP);
                }

                if ((family == AF_INET && protocol == IPPROTO_ICMP) || (family == AF_INET6 && protocol == IPPROTO_ICMPV6))
                {
                    // Ping sockets need the caller's group in net.ipv4.ping_group_range, empty by default.
                    throw ErrnoException.Of(Errno.EACCES);
                }

                throw ErrnoException.Of(Errno.EPROTONOSUPPORT);
            case SOCK_RAW:
                throw ErrnoException.Of(Errno.EPERM);
            default:
                throw ErrnoException.Of(Errno.ESOCKTNOSUPPORT);
        }
    }
}
