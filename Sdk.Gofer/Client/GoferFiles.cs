using AppKernel.Vfs;
using FileMode = AppKernel.Vfs.FileMode;

namespace AppKernel.Gofer.Client;

/// <summary>An open regular file: positional I/O straight on the host descriptor the Gofer passed.</summary>
internal sealed class GoferRegularFile(GoferInode inode, HostFileHandle handle, OpenFlags flags) : IFileOperations
{
    public IInode? Inode => inode;

    public long Read(Span<byte> buffer, ref long offset)
    {
        if (!flags.CanRead() || !handle.Readable)
        {
            throw ErrnoException.Of(Errno.EBADF);
        }

        if (offset < 0)
        {
            throw ErrnoException.Of(Errno.EINVAL);
        }

        long read = inode.ReadAt(handle, buffer, offset);
        offset += read;
        return read;
    }

    public long Write(ReadOnlySpan<byte> buffer, ref long offset, bool append)
    {
        if (!flags.CanWrite() || !handle.Writable)
        {
            throw ErrnoException.Of(Errno.EBADF);
        }

        long written = inode.WriteAt(handle, buffer, ref offset, append);
        if ((flags & OpenFlags.DataSync) != 0)
        {
            handle.Sync(dataOnly: (flags & OpenFlags.Sync) != OpenFlags.Sync);
        }

        return written;
    }

    public void Sync() => handle.Sync(dataOnly: false);

    public void Allocate(int mode, long offset, long length)
    {
        if (!flags.CanWrite() || !handle.Writable)
        {
            throw ErrnoException.Of(Errno.EBADF);
        }

        inode.AllocateAt(handle, mode, offset, length);
    }

    public IMappable? Mappable => inode.PageCache;
}

/// <summary>An open directory: listing goes through <see cref="IInode.ReadDirectory"/>; read() is EISDIR.</summary>
internal sealed class GoferDirectoryFile(GoferInode inode) : IFileOperations
{
    public IInode? Inode => inode;

    public long Read(Span<byte> buffer, ref long offset) => throw ErrnoException.Of(Errno.EISDIR);
}

/// <summary>An O_PATH description: it names the inode and allows nothing else (no host descriptor).</summary>
internal sealed class GoferPathFile(GoferInode inode) : IFileOperations
{
    public IInode? Inode => inode;

    public long Read(Span<byte> buffer, ref long offset) => throw ErrnoException.Of(Errno.EBADF);

    public long Write(ReadOnlySpan<byte> buffer, ref long offset, bool append) => throw ErrnoException.Of(Errno.EBADF);
}
