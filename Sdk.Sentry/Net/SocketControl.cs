using AppKernel.Sentry.Vfs;

namespace AppKernel.Sentry.Net;

/// <summary>The sender's credentials a Unix message carries (struct ucred, in the sandbox's ids).</summary>
internal readonly record struct SocketCredentials(int Pid, int Uid, int Gid)
{
    /// <summary>What SO_PEERCRED reports for a socket with no peer: pid 0 and the ids -1.</summary>
    public static SocketCredentials None => new(0, -1, -1);
}

/// <summary>
/// Ancillary data in flight on a Unix socket: the descriptions an SCM_RIGHTS message moves (one
/// reference each, until a receiver installs them or the message is dropped) and the sender's
/// credentials (delivered as SCM_CREDENTIALS to receivers with SO_PASSCRED).
/// </summary>
internal sealed class SocketControl
{
    public FileDescription[]? Files { get; set; }

    public SocketCredentials Credentials { get; set; }

    /// <summary>What MSG_PEEK receives: the credentials and a new reference to each file (scm_fp_dup), so the peeker gets fds of its own.</summary>
    public SocketControl PeekCopy() => new()
    {
        Credentials = Credentials,
        Files = Files is { } files ? [.. files.Select(f => f.AddReference())] : null,
    };

    /// <summary>Drops the references of files no one received.</summary>
    public void Release()
    {
        var files = Files;
        Files = null;
        if (files is not null)
        {
            foreach (var file in files)
            {
                file.Release();
            }
        }
    }
}

/// <summary>One message (or, on a stream, one segment) in a socket's receive queue.</summary>
internal sealed class SocketMessage
{
    public SocketMessage(byte[] data, byte[]? sender, SocketControl? control)
    {
        Data = data;
        Sender = sender;
        Control = control;
    }

    public byte[] Data { get; }

    /// <summary>Bytes of a stream segment already read.</summary>
    public int Offset { get; set; }

    public int Length => Data.Length - Offset;

    /// <summary>The sender's address as the receiver's family shows it; null when unnamed.</summary>
    public byte[]? Sender { get; }

    public SocketControl? Control { get; set; }
}
