using AppKernel.Sentry.Abi;
using AppKernel.Sentry.Kernel;
using AppKernel.Syscalls;
using AppKernel.Vfs;

namespace AppKernel.Sentry.Syscalls;

/// <summary>read, write and their vectored and positioned forms, lseek, sendfile.</summary>
internal static class IoSyscalls
{
    private const int IovMax = 1024;

    [Syscall(0)]
    public static SyscallResult Read(ISyscallContext c)
    {
        var t = c.Task();
        var a = c.Arguments;
        var file = t.Fds.Get((int)a.A0);
        if (file.Operations is AppKernel.Networking.ISocket && !file.IsPathOnly)
        {
            return SyscallResult.Ok(t.Group.Io.Count(write: false, SocketSyscalls.Read(t, file, [new LinuxIovec { Base = a.A1, Length = a.A2 }])));
        }

        return SyscallResult.Ok(t.Group.Io.Count(write: false, FileIo.Read(t, file, a.A1, (long)Math.Min(a.A2, long.MaxValue), null)));
    }

    [Syscall(1)]
    public static SyscallResult Write(ISyscallContext c)
    {
        var t = c.Task();
        var a = c.Arguments;
        var file = t.Fds.Get((int)a.A0);
        if (file.Operations is AppKernel.Networking.ISocket && !file.IsPathOnly)
        {
            return SyscallResult.Ok(t.Group.Io.Count(write: true, SocketSyscalls.Write(t, file, [new LinuxIovec { Base = a.A1, Length = a.A2 }])));
        }

        return SyscallResult.Ok(t.Group.Io.Count(write: true, FileIo.Write(t, file, a.A1, (long)Math.Min(a.A2, long.MaxValue), null)));
    }

    [Syscall(17)]
    public static SyscallResult Pread64(ISyscallContext c)
    {
        var t = c.Task();
        var a = c.Arguments;
        var file = t.Fds.Get((int)a.A0);
        long offset = (long)a.A3;
        CheckPositioned(file, offset, a.A2);
        return SyscallResult.Ok(t.Group.Io.Count(write: false, FileIo.Read(t, file, a.A1, (long)Math.Min(a.A2, long.MaxValue), offset)));
    }

    [Syscall(18)]
    public static SyscallResult Pwrite64(ISyscallContext c)
    {
        var t = c.Task();
        var a = c.Arguments;
        var file = t.Fds.Get((int)a.A0);
        long offset = (long)a.A3;
        CheckPositioned(file, offset, a.A2);
        return SyscallResult.Ok(t.Group.Io.Count(write: true, FileIo.Write(t, file, a.A1, (long)Math.Min(a.A2, long.MaxValue), offset)));
    }

    [Syscall(19)]
    public static SyscallResult Readv(ISyscallContext c) => Vectored(c, write: false, positioned: false);

    [Syscall(20)]
    public static SyscallResult Writev(ISyscallContext c) => Vectored(c, write: true, positioned: false);

    [Syscall(295)]
    public static SyscallResult Preadv(ISyscallContext c) => Vectored(c, write: false, positioned: true);

    [Syscall(296)]
    public static SyscallResult Pwritev(ISyscallContext c) => Vectored(c, write: true, positioned: true);

    [Syscall(327, SupportLevel.Partial, Note = "flags other than RWF_HIPRI/DSYNC/SYNC/APPEND/NOWAIT give EOPNOTSUPP; RWF_NOWAIT is honoured as non-blocking")]
    public static SyscallResult Preadv2(ISyscallContext c) => Vectored2(c, write: false);

    [Syscall(328, SupportLevel.Partial, Note = "see preadv2")]
    public static SyscallResult Pwritev2(ISyscallContext c) => Vectored2(c, write: true);

    private static SyscallResult Vectored2(ISyscallContext c, bool write)
    {
        var a = c.Arguments;
        if ((a.A5 & ~0x1FUL) != 0)
        {
            return SyscallResult.Error(Errno.EOPNOTSUPP);
        }

        // An offset of -1 means "the current offset", as read/write.
        return Vectored(c, write, positioned: (long)a.A3 != -1);
    }

    private static SyscallResult Vectored(ISyscallContext c, bool write, bool positioned)
    {
        var t = c.Task();
        var a = c.Arguments;
        var file = t.Fds.Get((int)a.A0);
        int count = (int)a.A2;
        if ((long)a.A2 < 0 || a.A2 > IovMax)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        long? position = positioned ? (long)a.A3 : null;
        if (positioned)
        {
            CheckPositioned(file, position!.Value, 1);
        }

        if (write ? !file.CanWrite : !file.CanRead)
        {
            return SyscallResult.Error(Errno.EBADF);
        }

        var vectors = new LinuxIovec[count];
        long total = 0;
        for (int i = 0; i < count; i++)
        {
            vectors[i] = t.Mm.ReadValue<LinuxIovec>(a.A1 + (ulong)i * 16);
            if ((long)vectors[i].Length < 0 || (total += (long)vectors[i].Length) < 0)
            {
                return SyscallResult.Error(Errno.EINVAL);
            }
        }

        if (file.Operations is AppKernel.Networking.ISocket && !positioned)
        {
            // One message across the vectors, as sendmsg/recvmsg.
            return SyscallResult.Ok(t.Group.Io.Count(write, write ? SocketSyscalls.Write(t, file, vectors) : SocketSyscalls.Read(t, file, vectors)));
        }

        long done = 0;
        foreach (var v in vectors)
        {
            if (v.Length == 0)
            {
                continue;
            }

            long n;
            try
            {
                n = write
                    ? FileIo.Write(t, file, v.Base, (long)v.Length, position + done)
                    : FileIo.Read(t, file, v.Base, (long)v.Length, position + done);
            }
            catch (ErrnoException) when (done > 0)
            {
                break;
            }

            done += n;
            if (n < (long)v.Length)
            {
                break;
            }
        }

        return SyscallResult.Ok(t.Group.Io.Count(write, done));
    }

    private static void CheckPositioned(Vfs.FileDescription file, long offset, ulong count)
    {
        if (offset < 0)
        {
            throw ErrnoException.Of(Errno.EINVAL);
        }

        if (file.Operations.IsStream)
        {
            throw ErrnoException.Of(Errno.ESPIPE);
        }
    }

    [Syscall(8)]
    public static SyscallResult Lseek(ISyscallContext c)
    {
        var t = c.Task();
        var a = c.Arguments;
        var file = t.Fds.Get((int)a.A0);
        long offset = (long)a.A1;
        int whence = (int)a.A2;
        if (file.Operations.IsStream)
        {
            return SyscallResult.Error(Errno.ESPIPE);
        }

        lock (file.OffsetLock)
        {
            bool directory = file.Operations is Vfs.DirectoryOperations;
            long size = directory ? 0 : file.Operations.Inode?.GetAttributes().Size ?? 0;
            long target = whence switch
            {
                LinuxConstants.SEEK_SET => offset,
                LinuxConstants.SEEK_CUR => file.Offset + offset,
                LinuxConstants.SEEK_END when !directory => size + offset,
                LinuxConstants.SEEK_DATA when !directory => offset < size ? offset : throw ErrnoException.Of(Errno.ENXIO),
                LinuxConstants.SEEK_HOLE when !directory => offset < size ? size : throw ErrnoException.Of(Errno.ENXIO),
                _ => throw ErrnoException.Of(Errno.EINVAL),
            };

            if (target < 0 || (offset < 0 && whence == LinuxConstants.SEEK_DATA))
            {
                return SyscallResult.Error(Errno.EINVAL);
            }

            file.Offset = target;
            return SyscallResult.Ok(target);
        }
    }

    [Syscall(40)]
    public static SyscallResult Sendfile(ISyscallContext c)
    {
        var t = c.Task();
        var a = c.Arguments;
        var output = t.Fds.Get((int)a.A0);
        var input = t.Fds.Get((int)a.A1);
        if (!input.CanRead || !output.CanWrite)
        {
            return SyscallResult.Error(Errno.EBADF);
        }

        if (input.Operations.IsStream)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        if ((output.Flags & OpenFlags.Append) != 0)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        long count = (long)Math.Min(a.A3, (ulong)FileIo.MaxTransfer);
        long? offset = null;
        if (a.A2 != 0)
        {
            offset = t.Mm.ReadValue<long>(a.A2);
            if (offset < 0)
            {
                return SyscallResult.Error(Errno.EINVAL);
            }
        }

        // The input is read at a position and advanced only by what the output took, so a full
        // non-blocking pipe or a signal loses nothing.
        if (!output.Operations.IsStream && count > 0)
        {
            FileIo.RemovePrivileges(t, output);
        }

        var buffer = new byte[(int)Math.Min(count, 1 << 20)];
        long done = 0;
        long start = offset ?? Volatile.Read(ref input.Offset);
        while (done < count)
        {
            int want = (int)Math.Min(count - done, buffer.Length);
            long position = start + done;
            long n = input.Operations.Read(buffer.AsSpan(0, want), ref position);
            if (n <= 0)
            {
                break;
            }

            long written = 0;
            try
            {
                while (written < n)
                {
                    long ignored = 0;
                    long w;
                    try
                    {
                        if (output.Operations.IsStream)
                        {
                            w = output.Operations.Write(buffer.AsSpan((int)written, (int)(n - written)), ref ignored, false);
                        }
                        else
                        {
                            lock (output.OffsetLock)
                            {
                                w = output.Operations.Write(buffer.AsSpan((int)written, (int)(n - written)), ref output.Offset, false);
                            }
                        }
                    }
                    catch (ErrnoException e) when (e.Errno == Errno.EAGAIN && !output.NonBlocking)
                    {
                        var ops = output.Operations;
                        t.WaitUntil(ops.Waiters, PollEvents.Out, () => ops.Poll(PollEvents.Out | PollEvents.Error) != 0);
                        continue;
                    }

                    written += w;
                }
            }
            catch (ErrnoException e) when (done + written > 0 || e.Errno == Errno.EPIPE)
            {
                if (e.Errno == Errno.EPIPE)
                {
                    t.SendSignal(SignalInfo.User(Signals.SIGPIPE, t.Pid, t.Credentials.RealUid));
                }

                done += written;
                if (done == 0)
                {
                    throw;
                }

                break;
            }

            done += written;
            if (n < want)
            {
                break;
            }
        }

        if (offset is not null)
        {
            t.Mm.WriteValue(a.A2, start + done);
        }
        else
        {
            lock (input.OffsetLock)
            {
                input.Offset = start + done;
            }
        }

        // Linux counts a sendfile as one read and one write of what it moved.
        t.Group.Io.Count(write: false, done);
        return SyscallResult.Ok(t.Group.Io.Count(write: true, done));
    }
}
