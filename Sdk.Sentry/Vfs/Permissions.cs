using AppKernel.Sentry.Kernel;
using AppKernel.Vfs;
using FileMode = AppKernel.Vfs.FileMode;

namespace AppKernel.Sentry.Vfs;

/// <summary>Linux's generic_permission: owner, group and other bits, with root's overrides.</summary>
internal static class Permissions
{
    public const int Read = 4, Write = 2, Execute = 1;

    public static bool MayAccess(in InodeAttributes attributes, Credentials credentials, int mask)
    {
        var mode = attributes.Mode;
        if (credentials.FsUid == 0)
        {
            // CAP_DAC_OVERRIDE: everything except executing a file with no execute bit at all.
            return (mask & Execute) == 0 || mode.IsDirectory() || ((uint)mode & 0x49) != 0;
        }

        uint bits = attributes.Uid == credentials.FsUid ? ((uint)mode >> 6) & 7
            : credentials.InGroup(attributes.Gid) ? ((uint)mode >> 3) & 7
            : (uint)mode & 7;
        return (bits & (uint)mask) == (uint)mask;
    }

    public static void Check(in InodeAttributes attributes, Credentials credentials, int mask)
    {
        if (!MayAccess(attributes, credentials, mask))
        {
            throw ErrnoException.Of(Errno.EACCES);
        }
    }

    /// <summary>The owner or root may change an inode's mode and times (EPERM otherwise).</summary>
    public static bool IsOwnerOrRoot(in InodeAttributes attributes, Credentials credentials) =>
        credentials.FsUid == 0 || attributes.Uid == credentials.FsUid;

    /// <summary>Sticky directories: only the owner of the file or of the directory (or root) may remove or rename it.</summary>
    public static void CheckSticky(in InodeAttributes directory, in InodeAttributes victim, Credentials credentials)
    {
        if ((directory.Mode & FileMode.Sticky) != 0 && credentials.FsUid != 0 &&
            victim.Uid != credentials.FsUid && directory.Uid != credentials.FsUid)
        {
            throw ErrnoException.Of(Errno.EPERM);
        }
    }
}
