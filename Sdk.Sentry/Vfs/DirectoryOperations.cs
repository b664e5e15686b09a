using AppKernel.Vfs;

namespace AppKernel.Sentry.Vfs;

/// <summary>An open directory: read and write fail with EISDIR; getdents walks the inode's listing from the description's offset.</summary>
internal sealed class DirectoryOperations(VfsPath path) : IFileOperations
{
    public VfsPath Path { get; } = path;

    public IInode? Inode => Path.Inode;

    public long Read(Span<byte> buffer, ref long offset) => throw ErrnoException.Of(Errno.EISDIR);

    public long Write(ReadOnlySpan<byte> buffer, ref long offset, bool append) => throw ErrnoException.Of(Errno.EISDIR);
}

/// <summary>An O_PATH description: it names a file but cannot be read, written or mapped.</summary>
internal sealed class PathOnlyOperations(IInode inode) : IFileOperations
{
    public IInode? Inode { get; } = inode;

    public long Read(Span<byte> buffer, ref long offset) => throw ErrnoException.Of(Errno.EBADF);

    public long Write(ReadOnlySpan<byte> buffer, ref long offset, bool append) => throw ErrnoException.Of(Errno.EBADF);
}
