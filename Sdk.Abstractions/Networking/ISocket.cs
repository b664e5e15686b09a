using AppKernel.Vfs;

namespace AppKernel.Networking;

/// <summary>
/// The socket operations beyond those of a file. Addresses are Linux <c>sockaddr</c> bytes.
/// Operations that would block throw EAGAIN, and the Sentry waits on <see cref="IFileOperations.Waiters"/>.
/// </summary>
public interface ISocket : IFileOperations
{
    /// <summary>bind(2).</summary>
    void Bind(ReadOnlySpan<byte> address);

    /// <summary>listen(2).</summary>
    void Listen(int backlog);

    /// <summary>accept(2): a connected socket, or EAGAIN when none is pending.</summary>
    ISocket Accept();

    /// <summary>connect(2); EINPROGRESS for a non-blocking connect still under way.</summary>
    void Connect(ReadOnlySpan<byte> address);

    /// <summary>getsockname(2): writes the address, returns its full length.</summary>
    int GetLocalAddress(Span<byte> address);

    /// <summary>getpeername(2): writes the address, returns its full length (ENOTCONN when unconnected).</summary>
    int GetPeerAddress(Span<byte> address);

    /// <summary>sendto/sendmsg data part: returns the bytes sent.</summary>
    long Send(ReadOnlySpan<byte> data, ReadOnlySpan<byte> address, int flags);

    /// <summary>recvfrom/recvmsg data part: returns the bytes received (or the datagram's full length with MSG_TRUNC); writes the sender's address length to <paramref name="addressLength"/>.</summary>
    long Receive(Span<byte> data, Span<byte> address, out int addressLength, int flags);

    /// <summary>shutdown(2).</summary>
    void Shutdown(int how);

    /// <summary>getsockopt(2): writes the value, returns its length (ENOPROTOOPT for unknown options).</summary>
    int GetOption(int level, int name, Span<byte> value);

    /// <summary>setsockopt(2).</summary>
    void SetOption(int level, int name, ReadOnlySpan<byte> value);
}
