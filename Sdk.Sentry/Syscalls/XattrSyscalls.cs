using System.Text;
using AppKernel.Sentry.Abi;
using AppKernel.Sentry.Kernel;
using AppKernel.Sentry.Vfs;
using AppKernel.Syscalls;
using AppKernel.Vfs;

namespace AppKernel.Sentry.Syscalls;

/// <summary>Extended attributes: get, set, list and remove, by path, by path without following, and by fd.</summary>
internal static class XattrSyscalls
{
    private const int XATTR_CREATE = 1, XATTR_REPLACE = 2;
    private const int XattrNameMax = 255, XattrSizeMax = 65536, XattrListMax = 65536;

    [Syscall(191)]
    public static SyscallResult Getxattr(ISyscallContext c) => Get(c, ByPath(c, follow: true));

    [Syscall(192)]
    public static SyscallResult Lgetxattr(ISyscallContext c) => Get(c, ByPath(c, follow: false));

    [Syscall(193)]
    public static SyscallResult Fgetxattr(ISyscallContext c) => Get(c, ByFd(c));

    [Syscall(188)]
    public static SyscallResult Setxattr(ISyscallContext c) => Set(c, ByPath(c, follow: true));

    [Syscall(189)]
    public static SyscallResult Lsetxattr(ISyscallContext c) => Set(c, ByPath(c, follow: false));

    [Syscall(190)]
    public static SyscallResult Fsetxattr(ISyscallContext c) => Set(c, ByFd(c));

    [Syscall(194)]
    public static SyscallResult Listxattr(ISyscallContext c) => List(c, ByPath(c, follow: true));

    [Syscall(195)]
    public static SyscallResult Llistxattr(ISyscallContext c) => List(c, ByPath(c, follow: false));

    [Syscall(196)]
    public static SyscallResult Flistxattr(ISyscallContext c) => List(c, ByFd(c));

    [Syscall(197)]
    public static SyscallResult Removexattr(ISyscallContext c) => Remove(c, ByPath(c, follow: true));

    [Syscall(198)]
    public static SyscallResult Lremovexattr(ISyscallContext c) => Remove(c, ByPath(c, follow: false));

    [Syscall(199)]
    public static SyscallResult Fremovexattr(ISyscallContext c) => Remove(c, ByFd(c));

    private readonly record struct Target(IInode Inode, Mount? Mount);

    private static Target ByPath(ISyscallContext c, bool follow)
    {
        var t = c.Task();
        var resolution = t.Kernel.Vfs.Resolve(t.PathContext, t.ReadPath(c.Arguments.A0), follow);
        return new Target(resolution.Inode, resolution.Description is null ? resolution.Path.Mount : null);
    }

    private static Target ByFd(ISyscallContext c)
    {
        var t = c.Task();
        var description = t.Fds.Get((int)c.Arguments.A0);
        if (description.IsPathOnly)
        {
            throw ErrnoException.Of(Errno.EBADF);
        }

        return new Target(description.Operations.Inode ?? throw ErrnoException.Of(Errno.EOPNOTSUPP), description.Path?.Mount);
    }

    private static string ReadName(KernelTask t, ulong address)
    {
        string name = t.Mm.ReadCString(address, XattrNameMax + 1);
        if (name.Length == 0 || Encoding.UTF8.GetByteCount(name) > XattrNameMax)
        {
            throw ErrnoException.Of(name.Length == 0 ? Errno.ERANGE : Errno.ERANGE);
        }

        // Only the namespaces Linux knows; others are EOPNOTSUPP.
        if (!(name.StartsWith("user.", StringComparison.Ordinal) || name.StartsWith("trusted.", StringComparison.Ordinal) ||
              name.StartsWith("security.", StringComparison.Ordinal) || name.StartsWith("system.", StringComparison.Ordinal)))
        {
            throw ErrnoException.Of(Errno.EOPNOTSUPP);
        }

        return name;
    }

    private static SyscallResult Get(ISyscallContext c, Target target)
    {
        var t = c.Task();
        var a = c.Arguments;
        string name = ReadName(t, a.A1);
        ulong size = a.A3;
        if (name.StartsWith("trusted.", StringComparison.Ordinal) && !t.Credentials.IsRoot)
        {
            return SyscallResult.Error(Errno.ENODATA);
        }

        if (name.StartsWith("user.", StringComparison.Ordinal))
        {
            Permissions.Check(target.Inode.GetAttributes(), t.Credentials, Permissions.Read);
        }

        var buffer = new byte[Math.Min(size, XattrSizeMax)];
        int length = target.Inode.GetExtendedAttribute(name, buffer);
        if (size == 0)
        {
            return SyscallResult.Ok(length);
        }

        if ((ulong)length > size)
        {
            return SyscallResult.Error(Errno.ERANGE);
        }

        t.Mm.Write(a.A2, buffer.AsSpan(0, length));
        return SyscallResult.Ok(length);
    }

    private static SyscallResult Set(ISyscallContext c, Target target)
    {
        var t = c.Task();
        var a = c.Arguments;
        int flags = (int)a.A4;
        if ((flags & ~(XATTR_CREATE | XATTR_REPLACE)) != 0)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        string name = ReadName(t, a.A1);
        if (a.A3 > XattrSizeMax)
        {
            return SyscallResult.Error(Errno.E2BIG);
        }

        if (target.Mount is { ReadOnly: true })
        {
            return SyscallResult.Error(Errno.EROFS);
        }

        var attributes = target.Inode.GetAttributes();
        if ((name.StartsWith("trusted.", StringComparison.Ordinal) || name.StartsWith("security.", StringComparison.Ordinal)) && !t.Credentials.IsRoot)
        {
            return SyscallResult.Error(Errno.EPERM);
        }

        if (name.StartsWith("user.", StringComparison.Ordinal))
        {
            // user.* only on regular files and directories, by whoever may write them.
            if (!attributes.Mode.IsRegular() && !attributes.Mode.IsDirectory())
            {
                return SyscallResult.Error(Errno.EPERM);
            }

            Permissions.Check(attributes, t.Credentials, Permissions.Write);
        }

        var value = new byte[a.A3];
        t.Mm.Read(a.A2, value);
        target.Inode.SetExtendedAttribute(name, value, flags);
        t.Kernel.Vfs.Inotify.SelfEvent(target.Inode, InotifyMask.Attrib);
        return SyscallResult.Zero;
    }

    private static SyscallResult List(ISyscallContext c, Target target)
    {
        var t = c.Task();
        var a = c.Arguments;
        ulong size = a.A2;
        IReadOnlyList<string> names;
        try
        {
            names = target.Inode.ListExtendedAttributes();
        }
        catch (ErrnoException e) when (e.Errno == Errno.EOPNOTSUPP)
        {
            // A filesystem without xattrs lists none, as Linux does.
            names = [];
        }

        var bytes = new List<byte>();
        foreach (var name in names)
        {
            if (name.StartsWith("trusted.", StringComparison.Ordinal) && !t.Credentials.IsRoot)
            {
                continue;
            }

            bytes.AddRange(Encoding.UTF8.GetBytes(name));
            bytes.Add(0);
        }

        if (bytes.Count > XattrListMax)
        {
            return SyscallResult.Error(Errno.E2BIG);
        }

        if (size == 0)
        {
            return SyscallResult.Ok(bytes.Count);
        }

        if ((ulong)bytes.Count > size)
        {
            return SyscallResult.Error(Errno.ERANGE);
        }

        t.Mm.Write(a.A1, bytes.ToArray());
        return SyscallResult.Ok(bytes.Count);
    }

    private static SyscallResult Remove(ISyscallContext c, Target target)
    {
        var t = c.Task();
        string name = ReadName(t, c.Arguments.A1);
        if (target.Mount is { ReadOnly: true })
        {
            return SyscallResult.Error(Errno.EROFS);
        }

        if ((name.StartsWith("trusted.", StringComparison.Ordinal) || name.StartsWith("security.", StringComparison.Ordinal)) && !t.Credentials.IsRoot)
        {
            return SyscallResult.Error(Errno.EPERM);
        }

        if (name.StartsWith("user.", StringComparison.Ordinal))
        {
            Permissions.Check(target.Inode.GetAttributes(), t.Credentials, Permissions.Write);
        }

        target.Inode.RemoveExtendedAttribute(name);
        t.Kernel.Vfs.Inotify.SelfEvent(target.Inode, InotifyMask.Attrib);
        return SyscallResult.Zero;
    }
}
