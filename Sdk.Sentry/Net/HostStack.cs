using System.Collections.Concurrent;
using System.Net;
using AppKernel.Networking;
using AppKernel.Sentry.Vfs;
using Microsoft.Extensions.Logging;
using static AppKernel.Sentry.Net.SocketConstants;

namespace AppKernel.Sentry.Net;

/// <summary>
/// Network mode host: AF_INET and AF_INET6 TCP and UDP sockets are host sockets the Sentry makes
/// on the program's behalf (<see cref="HostSocket"/>), checked against the
/// <see cref="NetworkPolicy"/>. It plugs into the socket layer through <see cref="INetworkStack"/>
/// like any stack a host registers; a user-space TCP/IP stack over a TAP device would take its place.
/// </summary>
internal sealed class HostStack : INetworkStack
{
    private readonly ConcurrentDictionary<HostSocket, byte> live = new();

    public HostStack(NetworkPolicy policy, HostPoller poller, ILogger log)
    {
        Policy = policy;
        Poller = poller;
        Log = log;
    }

    public string Name => "host";

    public NetworkPolicy Policy { get; }

    public HostPoller Poller { get; }

    public ILogger Log { get; }

    public bool Supports(int family, int type, int protocol) =>
        family is AF_INET or AF_INET6 && type switch
        {
            SOCK_STREAM => protocol is 0 or IPPROTO_TCP,
            SOCK_DGRAM => protocol is 0 or IPPROTO_UDP,
            _ => false,
        };

    public ISocket CreateSocket(int family, int type, int protocol) => HostSocket.Create(this, family, type, type == SOCK_STREAM ? IPPROTO_TCP : IPPROTO_UDP);

    internal void Add(HostSocket socket) => live[socket] = 0;

    internal void Remove(HostSocket socket) => live.TryRemove(socket, out _);

    /// <summary>
    /// Whether a connect or send to <paramref name="address"/>:<paramref name="port"/> may go:
    /// a rule allows it, or it is the loopback and a socket of this sandbox of the same type is
    /// there to receive it (a TCP listener, a bound UDP socket): the sandbox talking to itself.
    /// </summary>
    public bool MayReach(int type, IPAddress address, int port)
    {
        if (Policy.MayConnect(address, port))
        {
            return true;
        }

        if (!IPAddress.IsLoopback(address))
        {
            return false;
        }

        foreach (var socket in live.Keys)
        {
            if (socket.Type == type && socket.Receives(address, port))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>Logs a refusal (the audit stream records the call and its EACCES besides).</summary>
    public void Refused(string what, IPAddress address, int port)
    {
        var task = Kernel.KernelTask.Current;
        Log.LogWarning("network policy: refused {What} to {Address} port {Port} (pid {Pid})", what, address, port, task?.Pid ?? 0);
    }
}
