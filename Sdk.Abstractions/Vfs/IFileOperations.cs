using AppKernel.Syscalls;

namespace AppKernel.Vfs;

/// <summary>
/// The operations of an open file description: what read, write, lseek, ioctl, poll and mmap do
/// for one kind of file. The VFS core keeps the description's offset and flags and passes the
/// offset in; for stream files (<see cref="IsStream"/>) it is ignored.
/// An operation that would block throws EAGAIN; the core then waits on <see cref="Waiters"/>
/// unless the description is non-blocking. Errors are thrown as <see cref="ErrnoException"/>.
/// </summary>
public interface IFileOperations
{
    /// <summary>The inode the description was opened from, or null for anonymous files (pipes, sockets).</summary>
    IInode? Inode { get; }

    /// <summary>True for pipes, ttys and sockets: no file offset, lseek gives ESPIPE.</summary>
    bool IsStream => false;

    /// <summary>Reads at <paramref name="offset"/>, advancing it by the bytes read; 0 at end of file.</summary>
    long Read(Span<byte> buffer, ref long offset) => throw ErrnoException.Of(Errno.EINVAL);

    /// <summary>Writes at <paramref name="offset"/> (at the end when <paramref name="append"/>), advancing it.</summary>
    long Write(ReadOnlySpan<byte> buffer, ref long offset, bool append) => throw ErrnoException.Of(Errno.EINVAL);

    /// <summary>Readiness now, among <paramref name="mask"/>.</summary>
    PollEvents Poll(PollEvents mask) => mask & (PollEvents.In | PollEvents.Out | PollEvents.ReadNormal | PollEvents.WriteNormal);

    /// <summary>Where readiness changes are announced, or null if the file is always ready.</summary>
    WaitQueue? Waiters => null;

    /// <summary>Handles an ioctl; ENOTTY for requests the file does not know.</summary>
    long Ioctl(uint request, ulong argument, ISyscallContext context) => throw ErrnoException.Of(Errno.ENOTTY);

    /// <summary>Flushes the file's data (fsync/fdatasync).</summary>
    void Sync()
    {
    }

    /// <summary>
    /// fallocate: <paramref name="mode"/> is Linux's FALLOC_FL_* bits, already checked for
    /// combinations Linux refuses everywhere; the file refuses what it does not support (EOPNOTSUPP).
    /// </summary>
    void Allocate(int mode, long offset, long length) => throw ErrnoException.Of(Errno.EOPNOTSUPP);

    /// <summary>The pages that back the file for mmap, or null when it cannot be mapped (ENODEV).</summary>
    IMappable? Mappable => null;

    /// <summary>Called when the last reference to the description is closed.</summary>
    void Release()
    {
    }
}
