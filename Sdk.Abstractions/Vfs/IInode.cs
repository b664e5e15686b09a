namespace AppKernel.Vfs;

/// <summary>
/// A file, directory, symlink or special file of a filesystem. The VFS core does path walks,
/// permission checks, mount crossing and the dentry cache; an inode only does its own
/// operation. Operations a kind of inode lacks keep the default, which fails as Linux would.
/// Errors are thrown as <see cref="ErrnoException"/>.
/// </summary>
public interface IInode
{
    /// <summary>The filesystem the inode belongs to.</summary>
    IFileSystem FileSystem { get; }

    /// <summary>Current attributes.</summary>
    InodeAttributes GetAttributes();

    /// <summary>Applies a change (permission checks are done by the caller).</summary>
    void SetAttributes(in AttributeUpdate update) => throw ErrnoException.Of(Errno.EPERM);

    /// <summary>Finds <paramref name="name"/> in this directory; null when absent.</summary>
    IInode? Lookup(string name) => throw ErrnoException.Of(Errno.ENOTDIR);

    /// <summary>Lists the directory from the cookie <paramref name="offset"/> (2 for the start; "." and ".." come from the VFS).</summary>
    IEnumerable<DirectoryEntry> ReadDirectory(long offset) => throw ErrnoException.Of(Errno.ENOTDIR);

    /// <summary>Creates a regular file, FIFO, socket or device node. EEXIST when the name exists.</summary>
    IInode CreateNode(string name, FileMode mode, ulong device, FileOwner owner) => throw ErrnoException.Of(Errno.ENOTDIR);

    /// <summary>Creates a directory. EEXIST when the name exists.</summary>
    IInode CreateDirectory(string name, FileMode mode, FileOwner owner) => throw ErrnoException.Of(Errno.ENOTDIR);

    /// <summary>Creates a symbolic link holding <paramref name="target"/>.</summary>
    IInode CreateSymlink(string name, string target, FileOwner owner) => throw ErrnoException.Of(Errno.ENOTDIR);

    /// <summary>Adds a hard link named <paramref name="name"/> to <paramref name="target"/>.</summary>
    void Link(string name, IInode target) => throw ErrnoException.Of(Errno.ENOTDIR);

    /// <summary>Removes a non-directory entry.</summary>
    void Unlink(string name) => throw ErrnoException.Of(Errno.ENOTDIR);

    /// <summary>Removes an empty directory (ENOTEMPTY otherwise).</summary>
    void RemoveDirectory(string name) => throw ErrnoException.Of(Errno.ENOTDIR);

    /// <summary>Moves <paramref name="oldName"/> to <paramref name="newName"/> in <paramref name="newParent"/> (same filesystem).</summary>
    void Rename(string oldName, IInode newParent, string newName, RenameFlags flags) => throw ErrnoException.Of(Errno.ENOTDIR);

    /// <summary>The target of a symbolic link.</summary>
    string ReadLink() => throw ErrnoException.Of(Errno.EINVAL);

    /// <summary>Opens the inode. Access checks are done by the caller; O_TRUNC has been applied.</summary>
    IFileOperations Open(OpenFlags flags);

    /// <summary>Reads an extended attribute into <paramref name="value"/>; returns its length (ENODATA when absent).</summary>
    int GetExtendedAttribute(string name, Span<byte> value) => throw ErrnoException.Of(Errno.EOPNOTSUPP);

    /// <summary>Sets an extended attribute (flags: XATTR_CREATE = 1, XATTR_REPLACE = 2).</summary>
    void SetExtendedAttribute(string name, ReadOnlySpan<byte> value, int flags) => throw ErrnoException.Of(Errno.EOPNOTSUPP);

    /// <summary>Lists extended attribute names.</summary>
    IReadOnlyList<string> ListExtendedAttributes() => throw ErrnoException.Of(Errno.EOPNOTSUPP);

    /// <summary>Removes an extended attribute (ENODATA when absent).</summary>
    void RemoveExtendedAttribute(string name) => throw ErrnoException.Of(Errno.EOPNOTSUPP);
}
