namespace AppKernel.Sentry.Net;

/// <summary>Linux's socket numbers (socket(7), unix(7), ip(7), ipv6(7), tcp(7)): families, types, levels, options, flags.</summary>
internal static class SocketConstants
{
    public const int AF_UNSPEC = 0, AF_UNIX = 1, AF_INET = 2, AF_INET6 = 10, AF_NETLINK = 16, AF_PACKET = 17, AF_MAX = 46;

    public const int SOCK_STREAM = 1, SOCK_DGRAM = 2, SOCK_RAW = 3, SOCK_RDM = 4, SOCK_SEQPACKET = 5, SOCK_PACKET = 10, SOCK_MAX = 11;
    public const int SOCK_TYPE_MASK = 0xF, SOCK_NONBLOCK = 0x800, SOCK_CLOEXEC = 0x80000;

    public const int IPPROTO_IP = 0, IPPROTO_ICMP = 1, IPPROTO_TCP = 6, IPPROTO_UDP = 17, IPPROTO_IPV6 = 41, IPPROTO_ICMPV6 = 58,
        IPPROTO_UDPLITE = 136, IPPROTO_RAW = 255, IPPROTO_MPTCP = 262;

    public const int SOL_IP = 0, SOL_SOCKET = 1, SOL_TCP = 6, SOL_UDP = 17, SOL_IPV6 = 41;

    public const int SO_DEBUG = 1, SO_REUSEADDR = 2, SO_TYPE = 3, SO_ERROR = 4, SO_DONTROUTE = 5, SO_BROADCAST = 6,
        SO_SNDBUF = 7, SO_RCVBUF = 8, SO_KEEPALIVE = 9, SO_OOBINLINE = 10, SO_NO_CHECK = 11, SO_PRIORITY = 12,
        SO_LINGER = 13, SO_BSDCOMPAT = 14, SO_REUSEPORT = 15, SO_PASSCRED = 16, SO_PEERCRED = 17, SO_RCVLOWAT = 18,
        SO_SNDLOWAT = 19, SO_RCVTIMEO_OLD = 20, SO_SNDTIMEO_OLD = 21, SO_BINDTODEVICE = 25, SO_ACCEPTCONN = 30,
        SO_SNDBUFFORCE = 32, SO_RCVBUFFORCE = 33, SO_PROTOCOL = 38, SO_DOMAIN = 39, SO_RCVTIMEO_NEW = 66, SO_SNDTIMEO_NEW = 67;

    public const int TCP_NODELAY = 1, TCP_MAXSEG = 2, TCP_CORK = 3, TCP_KEEPIDLE = 4, TCP_KEEPINTVL = 5, TCP_KEEPCNT = 6,
        TCP_INFO = 11, TCP_QUICKACK = 12, TCP_USER_TIMEOUT = 18;

    public const int IP_TOS = 1, IP_TTL = 2, IP_RECVERR = 11, IPV6_UNICAST_HOPS = 16, IPV6_RECVERR = 25, IPV6_V6ONLY = 26;

    public const int MSG_OOB = 0x1, MSG_PEEK = 0x2, MSG_DONTROUTE = 0x4, MSG_CTRUNC = 0x8, MSG_TRUNC = 0x20,
        MSG_DONTWAIT = 0x40, MSG_EOR = 0x80, MSG_WAITALL = 0x100, MSG_CONFIRM = 0x800, MSG_ERRQUEUE = 0x2000,
        MSG_NOSIGNAL = 0x4000, MSG_MORE = 0x8000, MSG_WAITFORONE = 0x10000, MSG_CMSG_CLOEXEC = 0x40000000;

    public const int SCM_RIGHTS = 1, SCM_CREDENTIALS = 2, SCM_MAX_FD = 253;

    public const int SHUT_RD = 0, SHUT_WR = 1, SHUT_RDWR = 2;

    public const uint SIOCOUTQ = 0x5411, SIOCINQ = 0x541B, SIOCATMARK = 0x8905, SIOCGIFNAME = 0x8910, SIOCGIFCONF = 0x8912, SIOCGIFFLAGS = 0x8913,
        SIOCGIFADDR = 0x8915, SIOCGIFNETMASK = 0x891B, SIOCGIFMTU = 0x8921, SIOCGIFHWADDR = 0x8927, SIOCGIFINDEX = 0x8933;

    /// <summary>Linux's SOMAXCONN: listen's backlog is capped here.</summary>
    public const int SOMAXCONN = 4096;

    /// <summary>net.core.rmem_max / wmem_max and the default buffer sizes of Unix and UDP sockets.</summary>
    public const int DefaultBuffer = 212992;

    /// <summary>The ephemeral port range (net.ipv4.ip_local_port_range).</summary>
    public const int EphemeralFirst = 32768, EphemeralLast = 60999;
}
