namespace AppKernel.Sentry.Net;

/// <summary>
/// What the stream and datagram kinds share: the peer a socket is joined to and the address it
/// shows for it, socketpair's joining, bind, and reading state under the namespace's lock.
/// </summary>
internal abstract class PeerSocket<TSelf> : SentrySocket
    where TSelf : PeerSocket<TSelf>
{
    /// <summary>The joined socket (connect, socketpair), under <see cref="SentrySocket.Gate"/>.</summary>
    protected TSelf? peer;

    /// <summary>The peer's address as getpeername shows it, under <see cref="SentrySocket.Gate"/>.</summary>
    protected byte[]? peerAddress;

    protected PeerSocket(SocketNamespace space, int family, int type, int protocol)
        : base(space, family, type, protocol)
    {
    }

    /// <summary>Joins two new sockets (socketpair): each the other's peer, unnamed, with the caller's credentials.</summary>
    public static void Pair(TSelf a, TSelf b)
    {
        var credentials = CurrentPeerCredentials();
        lock (a.Gate)
        {
            a.peer = b;
            b.peer = a;
            a.peerAddress = a.Namespace.Unnamed(b);
            b.peerAddress = b.Namespace.Unnamed(a);
            a.PeerCredentials = b.PeerCredentials = credentials;
            a.PairedLocked();
            b.PairedLocked();
        }
    }

    /// <summary>What a kind adds to a socketpair's joining (called under the lock).</summary>
    protected virtual void PairedLocked()
    {
    }

    /// <summary>The peer's address while joined (for /proc/net and UDP's lookup), or null.</summary>
    public byte[]? RemoteAddress => Locked(() => RemoteAddressLocked);

    protected virtual byte[]? RemoteAddressLocked => peerAddress;

    /// <summary>Reads socket state under the namespace's lock.</summary>
    protected T Locked<T>(Func<T> read)
    {
        lock (Gate)
        {
            return read();
        }
    }

    public override void Bind(ReadOnlySpan<byte> address)
    {
        lock (Gate)
        {
            // A second bind is EINVAL (a Unix path bind reports EADDRINUSE first, from the namespace).
            if ((LocalAddress is not null && !UnixNamespace.IsPath(Family, address)) || BindRefusedLocked)
            {
                throw ErrnoException.Of(Errno.EINVAL);
            }
        }

        var local = Namespace.Bind(this, address);
        lock (Gate)
        {
            LocalAddress = local;
        }
    }

    /// <summary>Whether the kind's state refuses a bind (a connected TCP socket).</summary>
    protected virtual bool BindRefusedLocked => false;
}
