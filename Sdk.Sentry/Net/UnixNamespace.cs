using System.Runtime.CompilerServices;
using System.Text;
using AppKernel.Sentry.Kernel;
using AppKernel.Sentry.Vfs;
using AppKernel.Vfs;
using static AppKernel.Sentry.Net.SocketConstants;

namespace AppKernel.Sentry.Net;

/// <summary>
/// AF_UNIX addressing for one sandbox (unix(7)): path names are socket inodes made in the
/// sandbox's VFS (bind fails with EADDRINUSE when the name exists; connect resolves the path, so
/// ENOENT, EACCES and ECONNREFUSED come as on Linux), and the abstract namespace is a table
/// private to the sandbox. An address is kept as getsockname shows it.
/// </summary>
internal sealed class UnixNamespace : SocketNamespace
{
    /// <summary>sizeof(struct sockaddr_un).</summary>
    public const int MaxAddress = 110;

    private readonly ConditionalWeakTable<IInode, SentrySocket> byInode = new();
    private readonly Dictionary<(int Type, string Name), SentrySocket> abstractNames = new();
    private readonly Dictionary<SentrySocket, IInode> boundInodes = new(ReferenceEqualityComparer.Instance);
    private int nextAutobind;

    /// <summary>True for a Unix path address (bind makes the inode before it checks that the socket is unbound).</summary>
    public static bool IsPath(int family, ReadOnlySpan<byte> address) => family == AF_UNIX && address.Length > 2 && address[2] != 0;

    public override byte[] Unnamed(SentrySocket socket) => [AF_UNIX, 0];

    /// <summary>Sockets with a name, for /proc/net/unix.</summary>
    public List<SentrySocket> Named()
    {
        lock (Gate)
        {
            return [.. abstractNames.Values, .. boundInodes.Keys];
        }
    }

    public override byte[] Bind(SentrySocket socket, ReadOnlySpan<byte> address)
    {
        Validate(address);
        if (address.Length == 2)
        {
            return AutoBindAbstract(socket);
        }

        if (address[2] == 0)
        {
            var name = Encoding.Latin1.GetString(address[3..]);
            lock (Gate)
            {
                if (!abstractNames.TryAdd((socket.Type, name), socket))
                {
                    throw ErrnoException.Of(Errno.EADDRINUSE);
                }
            }

            return address.ToArray();
        }

        var task = KernelTask.Current ?? throw ErrnoException.Of(Errno.EINVAL);
        string path = PathOf(address);
        var vfs = task.Kernel.Vfs;
        try
        {
            vfs.MakeNode(task.Fs.Umask, task.PathContext, path, AppKernel.Vfs.FileMode.Socket | (AppKernel.Vfs.FileMode)0x1FF, 0);
        }
        catch (ErrnoException e) when (e.Errno == Errno.EEXIST)
        {
            throw ErrnoException.Of(Errno.EADDRINUSE);
        }

        var inode = vfs.Resolve(task.PathContext, path, followFinal: false).Inode;
        lock (Gate)
        {
            if (socket.LocalAddress is not null)
            {
                try
                {
                    vfs.Unlink(task.PathContext, path);
                }
                catch (ErrnoException)
                {
                }

                throw ErrnoException.Of(Errno.EINVAL);
            }

            byInode.AddOrUpdate(inode, socket);
            boundInodes[socket] = inode;
        }

        return Canonical(path);
    }

    private byte[] AutoBindAbstract(SentrySocket socket)
    {
        lock (Gate)
        {
            while (true)
            {
                // Linux's autobind: a 5-hex-digit abstract name.
                string name = (Interlocked.Increment(ref nextAutobind) & 0xFFFFF).ToString("x5");
                if (abstractNames.TryAdd((socket.Type, name), socket))
                {
                    return [AF_UNIX, 0, 0, .. Encoding.ASCII.GetBytes(name)];
                }
            }
        }
    }

    public override SentrySocket? Lookup(SentrySocket socket, ReadOnlySpan<byte> address, out byte[] canonical)
    {
        Validate(address);
        if (address.Length == 2)
        {
            throw ErrnoException.Of(Errno.EINVAL);
        }

        if (address[2] == 0)
        {
            canonical = address.ToArray();
            lock (Gate)
            {
                // Abstract names are per socket type: another type's name is not there (ECONNREFUSED).
                return abstractNames.TryGetValue((socket.Type, Encoding.Latin1.GetString(address[3..])), out var found)
                    ? found
                    : throw ErrnoException.Of(Errno.ECONNREFUSED);
            }
        }

        var task = KernelTask.Current ?? throw ErrnoException.Of(Errno.ECONNREFUSED);
        string path = PathOf(address);
        canonical = Canonical(path);
        var inode = task.Kernel.Vfs.Resolve(task.PathContext, path, followFinal: true).Inode;
        var attributes = inode.GetAttributes();
        if (attributes.Mode.Type() != AppKernel.Vfs.FileMode.Socket)
        {
            throw ErrnoException.Of(Errno.ECONNREFUSED);
        }

        Permissions.Check(attributes, task.Credentials, Permissions.Write);
        lock (Gate)
        {
            return byInode.TryGetValue(inode, out var found) ? found : throw ErrnoException.Of(Errno.ECONNREFUSED);
        }
    }

    public override byte[]? AutoBind(SentrySocket socket, byte[] destination) => null;

    public override void Unbind(SentrySocket socket)
    {
        lock (Gate)
        {
            if (socket.LocalAddress is { Length: > 2 } local && local[2] == 0)
            {
                string name = Encoding.Latin1.GetString(local.AsSpan(3));
                if (abstractNames.TryGetValue((socket.Type, name), out var owner) && owner == socket)
                {
                    abstractNames.Remove((socket.Type, name));
                }
            }

            if (boundInodes.Remove(socket, out var inode) && byInode.TryGetValue(inode, out var bound) && bound == socket)
            {
                byInode.Remove(inode);
            }
        }
    }

    private static void Validate(ReadOnlySpan<byte> address)
    {
        if (address.Length < 2 || address.Length > MaxAddress || BitConverter.ToUInt16(address) != AF_UNIX)
        {
            throw ErrnoException.Of(Errno.EINVAL);
        }
    }

    private static string PathOf(ReadOnlySpan<byte> address)
    {
        var bytes = address[2..];
        int end = bytes.IndexOf((byte)0);
        return Encoding.UTF8.GetString(end < 0 ? bytes : bytes[..end]);
    }

    private static byte[] Canonical(string path) => [AF_UNIX, 0, .. Encoding.UTF8.GetBytes(path), 0];
}
