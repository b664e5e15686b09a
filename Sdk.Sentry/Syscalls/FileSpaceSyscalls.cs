using AppKernel.Sentry.Kernel;
using AppKernel.Sentry.Vfs;
using AppKernel.Syscalls;
using AppKernel.Vfs;
using FileMode = AppKernel.Vfs.FileMode;

namespace AppKernel.Sentry.Syscalls;

/// <summary>A file's space and caching: fallocate, fadvise64, readahead, sync, syncfs, sync_file_range.</summary>
internal static class FileSpaceSyscalls
{
    private const int FALLOC_FL_KEEP_SIZE = 1, FALLOC_FL_PUNCH_HOLE = 2, FALLOC_FL_COLLAPSE_RANGE = 8,
        FALLOC_FL_ZERO_RANGE = 0x10, FALLOC_FL_INSERT_RANGE = 0x20, FALLOC_FL_UNSHARE_RANGE = 0x40, FALLOC_FL_WRITE_ZEROES = 0x80;

    [Syscall(285, SupportLevel.Partial, Note = "tmpfs (and overlay files on it): mode 0, FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE|KEEP_SIZE; gofer files (bind mounts, read-write root) also FALLOC_FL_ZERO_RANGE, on the host file; other filesystems and modes give EOPNOTSUPP")]
    public static SyscallResult Fallocate(ISyscallContext c)
    {
        var t = c.Task();
        var a = c.Arguments;
        var file = Usable(t, (int)a.A0);
        int mode = (int)a.A1;
        long offset = (long)a.A2, length = (long)a.A3;

        // Linux's vfs_fallocate, in its order.
        if (offset < 0 || length <= 0)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        // One operation (or plain allocation) plus FALLOC_FL_KEEP_SIZE where it makes sense, as Linux 6.13+.
        bool keepSize = (mode & FALLOC_FL_KEEP_SIZE) != 0;
        bool valid = (mode & ~FALLOC_FL_KEEP_SIZE) switch
        {
            0 or FALLOC_FL_UNSHARE_RANGE or FALLOC_FL_ZERO_RANGE => true,
            FALLOC_FL_PUNCH_HOLE => keepSize,
            FALLOC_FL_COLLAPSE_RANGE or FALLOC_FL_INSERT_RANGE or FALLOC_FL_WRITE_ZEROES => !keepSize,
            _ => false,
        };
        if (!valid)
        {
            return SyscallResult.Error(Errno.EOPNOTSUPP);
        }

        if (!file.CanWrite)
        {
            return SyscallResult.Error(Errno.EBADF);
        }

        var fileMode = ModeOf(file);
        if (fileMode.Type() == FileMode.Fifo || file.Operations is PipeEnd)
        {
            return SyscallResult.Error(Errno.ESPIPE);
        }

        if (fileMode.IsDirectory())
        {
            return SyscallResult.Error(Errno.EISDIR);
        }

        if (!fileMode.IsRegular())
        {
            return SyscallResult.Error(Errno.ENODEV);
        }

        if (offset + length < 0)
        {
            return SyscallResult.Error(Errno.EFBIG);
        }

        if (file.Path is { } path)
        {
            VirtualFileSystem.CheckWritableMount(path.Mount);
        }

        FileIo.RemovePrivileges(c.Task(), file);
        file.Operations.Allocate(mode, offset, length);
        return SyscallResult.Zero;
    }

    [Syscall(221)]
    public static SyscallResult Fadvise64(ISyscallContext c)
    {
        var t = c.Task();
        var a = c.Arguments;
        var file = Usable(t, (int)a.A0);
        int advice = (int)a.A3;
        if (file.Operations is PipeEnd || ModeOf(file).Type() == FileMode.Fifo)
        {
            return SyscallResult.Error(Errno.ESPIPE);
        }

        // POSIX_FADV_NORMAL..POSIX_FADV_NOREUSE; the page cache is the memory file, so advice changes
        // nothing. A negative length is accepted, as Linux 6.x does.
        if (advice is < 0 or > 5 || file.Operations.Inode is null)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        return SyscallResult.Zero;
    }

    [Syscall(187)]
    public static SyscallResult Readahead(ISyscallContext c)
    {
        var t = c.Task();
        var file = Usable(t, (int)c.Arguments.A0);
        if (!file.CanRead)
        {
            return SyscallResult.Error(Errno.EBADF);
        }

        return ModeOf(file).IsRegular() && file.Operations is not PipeEnd ? SyscallResult.Zero : SyscallResult.Error(Errno.EINVAL);
    }

    [Syscall(162)]
    public static SyscallResult Sync(ISyscallContext c) => SyscallResult.Zero;

    [Syscall(306)]
    public static SyscallResult Syncfs(ISyscallContext c)
    {
        var file = Usable(c.Task(), (int)c.Arguments.A0);
        file.Operations.Sync();
        return SyscallResult.Zero;
    }

    [Syscall(277)]
    public static SyscallResult SyncFileRange(ISyscallContext c)
    {
        var t = c.Task();
        var a = c.Arguments;
        var file = Usable(t, (int)a.A0);
        long offset = (long)a.A1, count = (long)a.A2;
        uint flags = (uint)a.A3;
        long end = unchecked(offset + count);
        if ((flags & ~7u) != 0 || offset < 0 || end < 0 || end < offset)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        var mode = ModeOf(file);
        if (file.Operations is PipeEnd || !(mode.IsRegular() || mode.IsDirectory() || mode.IsSymlink() || mode.Type() == FileMode.BlockDevice))
        {
            return SyscallResult.Error(Errno.ESPIPE);
        }

        return SyscallResult.Zero;
    }

    private static FileDescription Usable(KernelTask t, int fd)
    {
        var file = t.Fds.Get(fd);
        return file.IsPathOnly ? throw ErrnoException.Of(Errno.EBADF) : file;
    }

    private static FileMode ModeOf(FileDescription file) => file.Operations.Inode?.GetAttributes().Mode ?? 0;
}
