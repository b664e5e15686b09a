using AppKernel.Vfs;
using FileMode = AppKernel.Vfs.FileMode;

namespace AppKernel.Gofer;

/// <summary>
/// A host mount point below a gofer root (the host's /proc, /sys, /dev under "/"): the gofer does
/// not cross mounts, so the sandbox sees an empty, read-only directory there, on which the
/// Sentry mounts its own filesystems.
/// </summary>
internal sealed class GoferMountPointInode(GoferFileSystem fileSystem, ulong ino) : IInode
{
    public IFileSystem FileSystem => fileSystem;

    public InodeAttributes GetAttributes() => new()
    {
        Ino = ino,
        Mode = FileMode.Directory | (FileMode)0x1ED,
        Links = 2,
        BlockSize = 4096,
    };

    public IInode? Lookup(string name) => null;

    public IEnumerable<DirectoryEntry> ReadDirectory(long offset) => [];

    public IFileOperations Open(OpenFlags flags) => throw ErrnoException.Of(Errno.EISDIR);
}
