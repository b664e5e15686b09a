namespace AppKernel.Networking;

/// <summary>
/// A network stack the Sentry's socket layer can create sockets on: the sandbox's loopback
/// stack, policy-checked host networking, or a plugin's own. AF_UNIX is always the Sentry's.
/// </summary>
public interface INetworkStack
{
    /// <summary>The stack's name, as the options select it.</summary>
    string Name { get; }

    /// <summary>True when the stack serves sockets of this family, type and protocol.</summary>
    bool Supports(int family, int type, int protocol);

    /// <summary>Creates a socket; errors (EAFNOSUPPORT, EPROTONOSUPPORT, EMFILE) are thrown as <see cref="ErrnoException"/>.</summary>
    ISocket CreateSocket(int family, int type, int protocol);
}
