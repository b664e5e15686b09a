using AppKernel.Sentry.Abi;
using AppKernel.Sentry.Kernel;
using AppKernel.Sentry.Loader;
using AppKernel.Syscalls;
using AppKernel.Vfs;

namespace AppKernel.Sentry.Syscalls;

/// <summary>execve and execveat: the Sentry loads the new image itself.</summary>
internal static class ExecSyscalls
{
    private const int MaxArgStrings = 0x7FFFFFFF;

    [Syscall(59)]
    public static SyscallResult Execve(ISyscallContext c) =>
        Exec(c.Task(), LinuxConstants.AT_FDCWD, c.Arguments.A0, c.Arguments.A1, c.Arguments.A2, 0);

    [Syscall(322)]
    public static SyscallResult Execveat(ISyscallContext c)
    {
        int flags = (int)c.Arguments.A4;
        if ((flags & ~(LinuxConstants.AT_EMPTY_PATH | LinuxConstants.AT_SYMLINK_NOFOLLOW)) != 0)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        return Exec(c.Task(), (int)c.Arguments.A0, c.Arguments.A1, c.Arguments.A2, c.Arguments.A3, flags);
    }

    private static SyscallResult Exec(KernelTask t, int dirfd, ulong pathAddress, ulong argvAddress, ulong envpAddress, int flags)
    {
        string path = t.ReadPath(pathAddress);
        ulong limit = Math.Max(t.Group.Limits.Get(ResourceLimits.STACK).Current / 4, 32 * 4096);
        long budget = (long)Math.Min(limit, 6UL << 30);
        var argv = ReadStrings(t, argvAddress, ref budget);
        var envp = ReadStrings(t, envpAddress, ref budget);

        var context = t.PathContextAt(dirfd, path);
        if (path.Length == 0)
        {
            if ((flags & LinuxConstants.AT_EMPTY_PATH) == 0)
            {
                return SyscallResult.Error(Errno.ENOENT);
            }

            var description = t.Fds.Get(dirfd);
            if (description.Path is not { } fdPath)
            {
                return SyscallResult.Error(Errno.EACCES);
            }

            context = context with { Start = fdPath };
            path = ".";
        }
        else if ((flags & LinuxConstants.AT_SYMLINK_NOFOLLOW) != 0 &&
                 t.Kernel.Vfs.Resolve(context, path, followFinal: false).Inode.GetAttributes().Mode.Type() == AppKernel.Vfs.FileMode.Symlink)
        {
            return SyscallResult.Error(Errno.ELOOP);
        }

        var plan = ElfLoader.Prepare(t, context, path, argv, envp);
        if (t.Group.TaskCount > 1)
        {
            // execve in a multithreaded process: the other threads end, and the caller takes the leader's id.
            t.Group.KillOtherThreads(t);
            if (t.Tid != t.Group.Pid)
            {
                t.Kernel.Pids.RemoveTask(t);
                t.Tid = t.Group.Pid;
                t.Kernel.Pids.AddTask(t);
                t.Group.Leader = t;
            }
        }

        try
        {
            // Set-user-ID and set-group-ID bits are not honoured (as on a nosuid mount).
            t.Credentials = t.Credentials.ForExec();
            ElfLoader.Commit(t, plan);
        }
        catch (ErrnoException e)
        {
            // Past the point of no return the old image is gone: the process dies, as on Linux.
            t.Kernel.Log.LogExecFailure(t.Tid, path, e.Errno);
            t.Group.BeginExit(ExitStatus.Killed(Signals.SIGSEGV));
        }

        return SyscallResult.NoReturn;
    }

    private static List<string> ReadStrings(KernelTask t, ulong array, ref long budget)
    {
        var strings = new List<string>();
        if (array == 0)
        {
            return strings;
        }

        for (int i = 0; i < MaxArgStrings; i++)
        {
            ulong pointer = t.Mm.ReadValue<ulong>(array + (ulong)i * 8);
            if (pointer == 0)
            {
                break;
            }

            string s = t.Mm.ReadCString(pointer, 32 * 4096);
            budget -= s.Length + 1 + 8;
            if (budget < 0)
            {
                throw ErrnoException.Of(Errno.E2BIG);
            }

            strings.Add(s);
        }

        return strings;
    }
}
