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

    /// <summary>CAP_FSETID: keeps set-user-ID and set-group-ID bits through writes.</summary>
    private const int CapFsetid = 4;

    /// <summary>
    /// The set-group-ID bit a write or chown drops (Linux's setattr_should_drop_sgid): with group
    /// execute set it is a real set-gid program; without it (mandatory locking) it stays unless the
    /// caller is neither in the file's group nor holds CAP_FSETID.
    /// </summary>
    private static FileMode SetGidToDrop(in InodeAttributes attributes, Credentials credentials) =>
        (attributes.Mode & FileMode.SetGid) != 0 &&
        ((attributes.Mode & FileMode.GroupExecute) != 0 || !(credentials.InGroup(attributes.Gid) || credentials.HasCapability(CapFsetid)))
            ? FileMode.SetGid
            : 0;

    /// <summary>The bits chown (even by root, even to -1/-1) removes from a non-directory: set-user-ID always, set-group-ID as <see cref="SetGidToDrop"/>.</summary>
    public static FileMode DroppedByChown(in InodeAttributes attributes, Credentials credentials) =>
        attributes.Mode.IsDirectory() ? 0 : (attributes.Mode & FileMode.SetUid) | SetGidToDrop(attributes, credentials);

    /// <summary>The bits a write, truncate or fallocate removes from a regular file (none for a caller with CAP_FSETID).</summary>
    public static FileMode DroppedByWrite(in InodeAttributes attributes, Credentials credentials) =>
        !attributes.Mode.IsRegular() || credentials.HasCapability(CapFsetid) ? 0 : (attributes.Mode & FileMode.SetUid) | SetGidToDrop(attributes, credentials);

    /// <summary>
    /// Linux's file_remove_privs before a write, truncate or fallocate: clears the file's
    /// set-user-ID (and group-executable set-group-ID) bits unless the writer holds CAP_FSETID.
    /// Returns true when the mode changed (an IN_ATTRIB event).
    /// </summary>
    public static bool RemovePrivileges(IInode inode, Credentials credentials)
    {
        if (credentials.HasCapability(CapFsetid))
        {
            return false; // root (the common case) costs nothing here
        }

        var attributes = inode.GetAttributes();
        var drop = DroppedByWrite(attributes, credentials);
        if (drop == 0)
        {
            return false;
        }

        inode.SetAttributes(new AttributeUpdate(AttributeMask.Mode, Mode: attributes.Mode & FileMode.PermissionMask & ~drop));
        return true;
    }
}
