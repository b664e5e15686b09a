using AppKernel.Vfs;

namespace AppKernel.Networking;

/// <summary>
/// One socket of an <see cref="INetworkStack"/>: the operations beyond those of a file.
/// Addresses are Linux <c>sockaddr</c> bytes in the socket's family. Nothing here blocks: an
/// operation that would wait throws EAGAIN, and the Sentry's socket layer waits on
/// <see cref="IFileOperations.Waiters"/> until <see cref="IFileOperations.Poll"/> says the socket
/// is ready (or a signal, a timeout or MSG_DONTWAIT ends the call). Errors are thrown as
/// <see cref="ErrnoException"/> with Linux's errno.
/// </summary>
public interface ISocket : IFileOperations
{
    /// <summary>The socket's family (AF_INET, AF_INET6, ...), as SO_DOMAIN reports it.</summary>
    int Family { get; }

    /// <summary>The socket's type (SOCK_STREAM, SOCK_DGRAM, ...), without SOCK_NONBLOCK/SOCK_CLOEXEC.</summary>
    int Type { get; }

    /// <summary>The protocol (IPPROTO_TCP, IPPROTO_UDP, ...), as SO_PROTOCOL reports it.</summary>
    int Protocol { get; }

    /// <summary>bind(2).</summary>
    void Bind(ReadOnlySpan<byte> address);

    /// <summary>listen(2).</summary>
    void Listen(int backlog);

    /// <summary>accept(2): a connected socket, or EAGAIN when none is pending.</summary>
    ISocket Accept();

    /// <summary>
    /// connect(2). A connection that completes later throws EINPROGRESS: the socket turns
    /// writable when it is done and SO_ERROR then tells the outcome (the Sentry waits for that
    /// on a blocking socket). EAGAIN means "try again when writable".
    /// </summary>
    void Connect(ReadOnlySpan<byte> address);

    /// <summary>getsockname(2): writes as much of the address as fits, returns its full length.</summary>
    int GetLocalAddress(Span<byte> address);

    /// <summary>getpeername(2): writes as much of the address as fits, returns its full length (ENOTCONN when unconnected).</summary>
    int GetPeerAddress(Span<byte> address);

    /// <summary>
    /// The data part of send, sendto and sendmsg: returns the bytes taken (a stream socket may
    /// take part of <paramref name="data"/>); <paramref name="address"/> is empty when none was given.
    /// </summary>
    long Send(ReadOnlySpan<byte> data, ReadOnlySpan<byte> address, int flags);

    /// <summary>
    /// The data part of recv, recvfrom and recvmsg: fills <paramref name="data"/> and returns the
    /// bytes received (0 at end of stream; a datagram's full length with MSG_TRUNC); writes the
    /// sender's address to <paramref name="address"/> and its full length to
    /// <paramref name="addressLength"/> (0 when there is none). <paramref name="flags"/> comes in
    /// as the call's MSG_* flags and goes out as recvmsg's msg_flags (MSG_TRUNC, MSG_CTRUNC).
    /// </summary>
    long Receive(Span<byte> data, Span<byte> address, out int addressLength, ref int flags);

    /// <summary>shutdown(2).</summary>
    void Shutdown(int how);

    /// <summary>getsockopt(2): writes the value, returns its length (ENOPROTOOPT for unknown options).</summary>
    int GetOption(int level, int name, Span<byte> value);

    /// <summary>setsockopt(2).</summary>
    void SetOption(int level, int name, ReadOnlySpan<byte> value);
}
