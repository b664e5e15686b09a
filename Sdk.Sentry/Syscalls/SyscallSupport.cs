using AppKernel.Sentry.Abi;
using AppKernel.Sentry.Kernel;
using AppKernel.Sentry.Vfs;
using AppKernel.Syscalls;

namespace AppKernel.Sentry.Syscalls;

/// <summary>Small things every syscall family needs: the task behind the context, user paths, stat filling.</summary>
internal static class SyscallSupport
{
    /// <summary>The task making the call: built-in handlers always run with the Sentry's own context.</summary>
    public static KernelTask Task(this ISyscallContext context) => (KernelTask)context;

    /// <summary>A path argument: EFAULT for a bad pointer, ENAMETOOLONG past PATH_MAX.</summary>
    public static string ReadPath(this KernelTask task, ulong address)
    {
        if (address == 0)
        {
            throw ErrnoException.Of(Errno.EFAULT);
        }

        return task.Mm.ReadCString(address, LinuxConstants.PathMax - 1);
    }

    public static SyscallResult Ok(long value) => SyscallResult.Ok(value);

    /// <summary><see cref="ResolveAt"/>, returning false for ENOENT instead of throwing (see <see cref="VirtualFileSystem.TryResolve"/>).</summary>
    public static bool TryResolveAt(KernelTask task, int dirfd, string path, int flags, out Resolution resolution)
    {
        if (path.Length == 0)
        {
            if ((flags & LinuxConstants.AT_EMPTY_PATH) == 0)
            {
                resolution = default;
                return false;
            }

            resolution = ResolveAt(task, dirfd, path, flags);
            return true;
        }

        var context = task.PathContextAt(dirfd, path);
        return task.Kernel.Vfs.TryResolve(context, path, (flags & LinuxConstants.AT_SYMLINK_NOFOLLOW) == 0, out resolution);
    }

    /// <summary>The file a *at syscall names: a path from dirfd, or the fd itself with AT_EMPTY_PATH and "".</summary>
    public static Resolution ResolveAt(KernelTask task, int dirfd, string path, int flags, bool followDefault = true)
    {
        if (path.Length == 0)
        {
            if ((flags & LinuxConstants.AT_EMPTY_PATH) == 0)
            {
                throw ErrnoException.Of(Errno.ENOENT);
            }

            if (dirfd == LinuxConstants.AT_FDCWD)
            {
                return new Resolution(task.Fs.Cwd, null);
            }

            var description = task.Fds.Get(dirfd);
            return description.Path is { } path0 ? new Resolution(path0, null) : new Resolution(default, description);
        }

        bool follow = followDefault ? (flags & LinuxConstants.AT_SYMLINK_NOFOLLOW) == 0 : (flags & LinuxConstants.AT_SYMLINK_FOLLOW) != 0;
        var context = task.PathContextAt(dirfd, path);
        return task.Kernel.Vfs.Resolve(context, path, follow);
    }
}
