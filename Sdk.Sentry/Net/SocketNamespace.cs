namespace AppKernel.Sentry.Net;

/// <summary>
/// Where one family's addresses live and how they are parsed and written: the Unix namespace
/// (paths in the sandbox VFS and the abstract names) or the loopback stack's port tables. The
/// stream and datagram socket kinds call it; all of its sockets share its <see cref="Gate"/>.
/// </summary>
internal abstract class SocketNamespace
{
    /// <summary>Held while a socket's state or its peer's changes.</summary>
    public object Gate { get; } = new();

    /// <summary>Binds <paramref name="socket"/> (caller holds no gate): validates, registers and returns the address as getsockname shows it.</summary>
    public abstract byte[] Bind(SentrySocket socket, ReadOnlySpan<byte> address);

    /// <summary>
    /// The socket an address names, for connect or a datagram's send; null when no socket is
    /// there and the family drops the data silently (UDP). Throws ECONNREFUSED, ENOENT,
    /// ENETUNREACH, EAFNOSUPPORT as the family does. <paramref name="canonical"/> is the
    /// destination as getpeername shows it.
    /// </summary>
    public abstract SentrySocket? Lookup(SentrySocket socket, ReadOnlySpan<byte> address, out byte[] canonical);

    /// <summary>Gives an unbound socket an address before it connects or sends (an ephemeral port); null when the family leaves it unnamed.</summary>
    public abstract byte[]? AutoBind(SentrySocket socket, byte[] destination);

    /// <summary>listen(2) may re-check the bind rules now that the socket listens.</summary>
    public virtual void CheckListen(SentrySocket socket)
    {
    }

    /// <summary>Forgets the socket's address (on close).</summary>
    public abstract void Unbind(SentrySocket socket);

    /// <summary>getsockname of an unbound socket.</summary>
    public abstract byte[] Unnamed(SentrySocket socket);

    /// <summary>An address as a socket of <paramref name="receiver"/>'s family shows it (IPv4 in IPv6 form for AF_INET6).</summary>
    public virtual byte[]? ForReceiver(SentrySocket receiver, byte[]? address) => address;

    /// <summary>A connection's accepting side was made (it is listed in /proc/net until it closes; gate held).</summary>
    public virtual void Accepted(SentrySocket server)
    {
    }

    /// <summary>The address an accepted socket is bound to, given the destination the client asked for.</summary>
    public virtual byte[]? AcceptedLocal(SentrySocket listener, byte[] destination) => listener.LocalAddress;
}
