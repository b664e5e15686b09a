using System.Buffers.Binary;
using System.Net;
using AppKernel.Sentry.Hosting;
using static AppKernel.Sentry.Net.SocketConstants;

namespace AppKernel.Sentry.Net;

/// <summary>
/// The allow-list of network mode host (<see cref="SandboxOptions.AllowConnect"/>,
/// <see cref="SandboxOptions.AllowBind"/>): where a program may connect or send, and which ports
/// it may bind. IPv4-mapped IPv6 destinations are matched as IPv4; an unspecified destination
/// (0.0.0.0, ::) is the local host, as Linux routes it, and is matched as loopback.
/// </summary>
internal sealed class NetworkPolicy
{
    private readonly List<(IPNetwork Network, int? Port)> connect = new();
    private readonly HashSet<int> bind;

    public NetworkPolicy(IEnumerable<string> allowConnect, IEnumerable<int> allowBind)
    {
        foreach (string rule in allowConnect)
        {
            if (SandboxOptionsValidator.TryParseConnectRule(rule, out var network, out int? port, out _))
            {
                if (network.BaseAddress.IsIPv4MappedToIPv6 && network.PrefixLength >= 96)
                {
                    // Destinations in ::ffff:0:0/96 are matched as IPv4, so such a rule is too.
                    network = new IPNetwork(network.BaseAddress.MapToIPv4(), network.PrefixLength - 96);
                }

                connect.Add((network, port));
            }
        }

        bind = [.. allowBind];
    }

    /// <summary>True when a rule covers <paramref name="address"/> and <paramref name="port"/>.</summary>
    public bool MayConnect(IPAddress address, int port)
    {
        foreach (var (network, rulePort) in connect)
        {
            if ((rulePort is null || rulePort == port) && network.Contains(address))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>Binding port 0 (an ephemeral port, as a client's) is always allowed; a listener's port is checked again at listen.</summary>
    public bool MayBind(int port) => port == 0 || bind.Contains(port);

    /// <summary>Whether a program may listen on <paramref name="port"/>.</summary>
    public bool MayListen(int port) => port != 0 && bind.Contains(port);

    /// <summary>
    /// Reads an inet socket address as a socket of <paramref name="socketFamily"/> takes it:
    /// AF_INET (16 bytes or more) or AF_INET6 (24 or more; IPv4-mapped comes back as IPv4).
    /// False with Linux's errno for what is not an inet destination: EINVAL when short,
    /// EAFNOSUPPORT for another family. AF_UNSPEC is left to the caller.
    /// </summary>
    public static bool TryParse(ReadOnlySpan<byte> address, int socketFamily, out IPAddress ip, out int port, out Errno error)
    {
        ip = IPAddress.None;
        port = 0;
        error = Errno.EINVAL;
        if (address.Length < 2)
        {
            return false;
        }

        int family = BinaryPrimitives.ReadUInt16LittleEndian(address);
        if (family == AF_INET && socketFamily is AF_INET or AF_INET6)
        {
            if (address.Length < 16)
            {
                return false;
            }

            ip = new IPAddress(address.Slice(4, 4));
        }
        else if (family == AF_INET6 && socketFamily == AF_INET6)
        {
            if (address.Length < 24)
            {
                return false;
            }

            ip = new IPAddress(address.Slice(8, 16));
            if (ip.IsIPv4MappedToIPv6)
            {
                ip = ip.MapToIPv4();
            }
        }
        else
        {
            error = Errno.EAFNOSUPPORT;
            return false;
        }

        port = BinaryPrimitives.ReadUInt16BigEndian(address[2..]);
        if (ip.Equals(IPAddress.Any))
        {
            ip = IPAddress.Loopback;
        }
        else if (ip.Equals(IPAddress.IPv6Any))
        {
            ip = IPAddress.IPv6Loopback;
        }

        return true;
    }

    /// <summary>A port from a sockaddr (0 when too short to hold one).</summary>
    public static int PortOf(ReadOnlySpan<byte> address) => address.Length >= 4 ? BinaryPrimitives.ReadUInt16BigEndian(address[2..]) : 0;
}
