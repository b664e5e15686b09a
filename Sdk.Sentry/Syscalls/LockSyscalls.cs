using System.Runtime.InteropServices;
using AppKernel.Sentry.Abi;
using AppKernel.Sentry.Kernel;
using AppKernel.Sentry.Vfs;
using AppKernel.Syscalls;

namespace AppKernel.Sentry.Syscalls;

/// <summary>Advisory file locks: flock and fcntl's record locks (POSIX and OFD), kept in <see cref="FileLockTable"/>.</summary>
internal static class LockSyscalls
{
    private const int LOCK_SH = 1, LOCK_EX = 2, LOCK_NB = 4, LOCK_UN = 8, LOCK_MAND = 32;
    private const short F_RDLCK = 0, F_WRLCK = 1, F_UNLCK = 2;

    /// <summary>Linux's struct flock on x86-64 (32 bytes).</summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct Flock
    {
        public short Type;
        public short Whence;
        private readonly int pad0;
        public long Start;
        public long Length;
        public int Pid;
        private readonly int pad1;
    }

    [Syscall(73)]
    public static SyscallResult FlockCall(ISyscallContext c)
    {
        var t = c.Task();
        var a = c.Arguments;
        int operation = (int)a.A1;
        if ((operation & LOCK_MAND) != 0)
        {
            // Linux ignores the long-broken mandatory flock requests and reports success.
            return SyscallResult.Zero;
        }

        var type = (operation & ~LOCK_NB) switch
        {
            LOCK_SH => LockType.Read,
            LOCK_EX => LockType.Write,
            LOCK_UN => LockType.Unlock,
            _ => throw ErrnoException.Of(Errno.EINVAL),
        };
        var description = t.Fds.Get((int)a.A0);
        if (description.IsPathOnly)
        {
            return SyscallResult.Error(Errno.EBADF);
        }

        t.Kernel.FileLocks.Flock(t, description, type, (operation & LOCK_NB) == 0);
        return SyscallResult.Zero;
    }

    /// <summary>fcntl's F_GETLK, F_SETLK, F_SETLKW and their F_OFD_ forms.</summary>
    public static SyscallResult Fcntl(KernelTask t, FileDescription description, int command, ulong address)
    {
        var request = t.Mm.ReadValue<Flock>(address);
        bool ofd = command is LinuxConstants.F_OFD_GETLK or LinuxConstants.F_OFD_SETLK or LinuxConstants.F_OFD_SETLKW;
        bool getting = command is LinuxConstants.F_GETLK or LinuxConstants.F_OFD_GETLK;
        // Linux's order: getlk checks the type first; setlk converts the range first, then the
        // type, the access mode, and last OFD's l_pid.
        if (getting && request.Type is not (F_RDLCK or F_WRLCK))
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        var (start, end) = Range(description, request);
        var type = request.Type switch
        {
            F_RDLCK => LockType.Read,
            F_WRLCK => LockType.Write,
            F_UNLCK => LockType.Unlock,
            _ => throw ErrnoException.Of(Errno.EINVAL),
        };
        if (!getting && ((type == LockType.Read && !description.CanRead) || (type == LockType.Write && !description.CanWrite)))
        {
            return SyscallResult.Error(Errno.EBADF);
        }

        if (ofd && request.Pid != 0)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        object owner = ofd ? description : t.Fds;
        if (getting)
        {
            var conflict = t.Kernel.FileLocks.Test(description, owner, type, start, end);
            if (conflict is null)
            {
                request.Type = F_UNLCK;
            }
            else
            {
                request.Type = conflict.Type == LockType.Write ? F_WRLCK : F_RDLCK;
                request.Whence = LinuxConstants.SEEK_SET;
                request.Start = conflict.Start;
                request.Length = conflict.End == long.MaxValue ? 0 : conflict.End - conflict.Start + 1;
                request.Pid = conflict.Ofd ? -1 : conflict.Pid;
            }

            t.Mm.WriteValue(address, request);
            return SyscallResult.Zero;
        }

        bool wait = command is LinuxConstants.F_SETLKW or LinuxConstants.F_OFD_SETLKW;
        t.Kernel.FileLocks.SetRecord(t, description, owner, ofd, type, start, end, wait);
        return SyscallResult.Zero;
    }

    // Linux's flock_to_posix_lock: l_whence, l_start and l_len to an inclusive byte range.
    private static (long Start, long End) Range(FileDescription description, in Flock request)
    {
        long origin = request.Whence switch
        {
            LinuxConstants.SEEK_SET => 0,
            LinuxConstants.SEEK_CUR => Volatile.Read(ref description.Offset),
            LinuxConstants.SEEK_END => description.Operations.Inode?.GetAttributes().Size ?? 0,
            _ => throw ErrnoException.Of(Errno.EINVAL),
        };
        if (request.Start > long.MaxValue - origin)
        {
            throw ErrnoException.Of(Errno.EOVERFLOW);
        }

        long start = origin + request.Start;
        if (start < 0)
        {
            throw ErrnoException.Of(Errno.EINVAL);
        }

        long end;
        if (request.Length > 0)
        {
            if (request.Length - 1 > long.MaxValue - start)
            {
                throw ErrnoException.Of(Errno.EOVERFLOW);
            }

            end = start + request.Length - 1;
        }
        else if (request.Length < 0)
        {
            end = start - 1;
            start += request.Length;
            if (start < 0)
            {
                throw ErrnoException.Of(Errno.EINVAL);
            }
        }
        else
        {
            end = long.MaxValue;
        }

        return (start, end);
    }
}
