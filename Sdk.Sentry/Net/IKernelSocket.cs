using AppKernel.Networking;

namespace AppKernel.Sentry.Net;

/// <summary>
/// A socket the Sentry makes itself (its own sockets and network mode host's): the socket layer
/// gives it the caller's blocking mode on connect and reads its SO_RCVTIMEO/SO_SNDTIMEO to
/// bound its waits. Sockets of registered stacks are plain <see cref="ISocket"/>s.
/// </summary>
internal interface IKernelSocket : ISocket
{
    /// <summary>SO_RCVTIMEO in nanoseconds; 0 waits forever.</summary>
    long ReceiveTimeout { get; }

    /// <summary>SO_SNDTIMEO in nanoseconds; 0 waits forever.</summary>
    long SendTimeout { get; }

    /// <summary>connect(2) with the caller's blocking mode (a TCP connect reports EINPROGRESS to the layer either way when it completes later).</summary>
    void Connect(ReadOnlySpan<byte> address, bool nonBlocking);

    /// <summary>A blocking connect's wait ended with success (SO_ERROR 0).</summary>
    void ConnectCompleted(ReadOnlySpan<byte> address);
}
