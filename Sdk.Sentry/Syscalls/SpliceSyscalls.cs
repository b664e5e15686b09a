using System.Buffers;
using AppKernel.Sentry.Abi;
using AppKernel.Sentry.Kernel;
using AppKernel.Sentry.Vfs;
using AppKernel.Syscalls;
using AppKernel.Vfs;

namespace AppKernel.Sentry.Syscalls;

/// <summary>
/// Moving data between files without the program's buffers: splice, tee, vmsplice and
/// copy_file_range. Pipes are the kernel's own <see cref="Pipe"/>; data goes through a pooled
/// buffer, and a pipe is drained only by what the other side took, so an error loses nothing.
/// </summary>
internal static class SpliceSyscalls
{
    private const uint SPLICE_F_NONBLOCK = 2, SPLICE_F_ALL = 0xF;
    private const int Chunk = 1 << 20;

    [Syscall(275)]
    public static SyscallResult Splice(ISyscallContext c)
    {
        var t = c.Task();
        var a = c.Arguments;
        ulong inOffsetAddress = a.A1, outOffsetAddress = a.A3;
        long length = (long)Math.Min(a.A4, (ulong)FileIo.MaxTransfer);
        uint flags = (uint)a.A5;
        if (length == 0)
        {
            return SyscallResult.Zero;
        }

        if ((flags & ~SPLICE_F_ALL) != 0)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        var input = Usable(t, (int)a.A0);
        var output = Usable(t, (int)a.A2);
        if (!input.CanRead || !output.CanWrite)
        {
            return SyscallResult.Error(Errno.EBADF);
        }

        var inPipe = PipeOf(input);
        var outPipe = PipeOf(output);
        bool nonBlocking = (flags & SPLICE_F_NONBLOCK) != 0;
        if (inPipe is not null && outPipe is not null)
        {
            if (inOffsetAddress != 0 || outOffsetAddress != 0)
            {
                return SyscallResult.Error(Errno.ESPIPE);
            }

            if (inPipe == outPipe)
            {
                return SyscallResult.Error(Errno.EINVAL);
            }

            return SyscallResult.Ok(PipeToPipe(t, inPipe, outPipe, length, nonBlocking || input.NonBlocking || output.NonBlocking, consume: true));
        }

        if (inPipe is not null)
        {
            if (inOffsetAddress != 0)
            {
                return SyscallResult.Error(Errno.ESPIPE);
            }

            long position = StartPosition(t, output, outOffsetAddress);
            if ((output.Flags & OpenFlags.Append) != 0)
            {
                return SyscallResult.Error(Errno.EINVAL);
            }

            CheckPosition(position);
            long moved = PipeToFile(t, inPipe, output, ref position, length, nonBlocking || input.NonBlocking);
            EndPosition(t, output, outOffsetAddress, position);
            return SyscallResult.Ok(moved);
        }

        if (outPipe is not null)
        {
            if (outOffsetAddress != 0)
            {
                return SyscallResult.Error(Errno.ESPIPE);
            }

            long position = StartPosition(t, input, inOffsetAddress);
            CheckPosition(position);
            long moved = FileToPipe(t, input, outPipe, ref position, length, nonBlocking || output.NonBlocking);
            EndPosition(t, input, inOffsetAddress, position);
            return SyscallResult.Ok(moved);
        }

        return SyscallResult.Error(Errno.EINVAL);
    }

    [Syscall(276)]
    public static SyscallResult Tee(ISyscallContext c)
    {
        var t = c.Task();
        var a = c.Arguments;
        long length = (long)Math.Min(a.A2, (ulong)FileIo.MaxTransfer);
        uint flags = (uint)a.A3;
        if ((flags & ~SPLICE_F_ALL) != 0)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        if (length == 0)
        {
            return SyscallResult.Zero;
        }

        var input = Usable(t, (int)a.A0);
        var output = Usable(t, (int)a.A1);
        if (!input.CanRead || !output.CanWrite)
        {
            return SyscallResult.Error(Errno.EBADF);
        }

        if (PipeOf(input) is not { } inPipe || PipeOf(output) is not { } outPipe || inPipe == outPipe)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        bool nonBlocking = (flags & SPLICE_F_NONBLOCK) != 0 || input.NonBlocking || output.NonBlocking;
        return SyscallResult.Ok(PipeToPipe(t, inPipe, outPipe, length, nonBlocking, consume: false));
    }

    [Syscall(278)]
    public static SyscallResult Vmsplice(ISyscallContext c)
    {
        var t = c.Task();
        var a = c.Arguments;
        uint flags = (uint)a.A3;
        if ((flags & ~SPLICE_F_ALL) != 0)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        var file = Usable(t, (int)a.A0);
        bool toPipe = file.CanWrite;
        if (PipeOf(file) is not { } pipe || (file.CanRead == file.CanWrite))
        {
            return SyscallResult.Error(Errno.EBADF);
        }

        if (a.A2 > 1024)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        int count = (int)a.A2;
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

        total = Math.Min(total, FileIo.MaxTransfer);
        if (total == 0)
        {
            return SyscallResult.Zero;
        }

        bool nonBlocking = (flags & SPLICE_F_NONBLOCK) != 0 || file.NonBlocking;
        byte[] buffer = ArrayPool<byte>.Shared.Rent((int)Math.Min(total, Chunk));
        try
        {
            long done = 0;
            foreach (var v in vectors)
            {
                long left = Math.Min((long)v.Length, total - done);
                long within = 0;
                while (left > 0)
                {
                    int want = (int)Math.Min(left, buffer.Length);
                    long n;
                    try
                    {
                        if (toPipe)
                        {
                            t.Mm.Read(v.Base + (ulong)within, buffer.AsSpan(0, want));
                            int room = WaitForRoom(t, pipe, nonBlocking, done);
                            n = room == 0 ? 0 : pipe.Write(buffer.AsSpan(0, Math.Min(want, room)));
                        }
                        else
                        {
                            if (!WaitForData(t, pipe, nonBlocking, done))
                            {
                                return SyscallResult.Ok(done);
                            }

                            n = pipe.Peek(buffer.AsSpan(0, want));
                            t.Mm.Write(v.Base + (ulong)within, buffer.AsSpan(0, (int)n));
                            pipe.Read(buffer.AsSpan(0, (int)n));
                        }
                    }
                    catch (ErrnoException) when (done > 0)
                    {
                        return SyscallResult.Ok(done);
                    }

                    if (n == 0)
                    {
                        return SyscallResult.Ok(done);
                    }

                    done += n;
                    within += n;
                    left -= n;
                }

                if (done >= total)
                {
                    break;
                }
            }

            return SyscallResult.Ok(done);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    [Syscall(326)]
    public static SyscallResult CopyFileRange(ISyscallContext c)
    {
        var t = c.Task();
        var a = c.Arguments;
        ulong inOffsetAddress = a.A1, outOffsetAddress = a.A3;
        long length = (long)Math.Min(a.A4, (ulong)long.MaxValue);
        var input = Usable(t, (int)a.A0);
        var output = Usable(t, (int)a.A2);
        long inPosition = inOffsetAddress != 0 ? t.Mm.ReadValue<long>(inOffsetAddress) : Volatile.Read(ref input.Offset);
        long outPosition = outOffsetAddress != 0 ? t.Mm.ReadValue<long>(outOffsetAddress) : Volatile.Read(ref output.Offset);
        if (a.A5 != 0)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        // Linux's generic_copy_file_checks, in its order.
        var inInode = input.Operations.Inode;
        var outInode = output.Operations.Inode;
        var inAttributes = inInode?.GetAttributes();
        var outAttributes = outInode?.GetAttributes();
        if (inAttributes?.Mode.IsDirectory() == true || outAttributes?.Mode.IsDirectory() == true)
        {
            return SyscallResult.Error(Errno.EISDIR);
        }

        if (inAttributes?.Mode.IsRegular() != true || outAttributes?.Mode.IsRegular() != true)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        if (!input.CanRead || !output.CanWrite || (output.Flags & OpenFlags.Append) != 0)
        {
            return SyscallResult.Error(Errno.EBADF);
        }

        if (inPosition < 0 || outPosition < 0 || inPosition + length < inPosition || outPosition + length < outPosition)
        {
            return SyscallResult.Error(Errno.EOVERFLOW);
        }

        long size = inAttributes.Value.Size;
        long count = inPosition >= size ? 0 : Math.Min(length, size - inPosition);
        bool sameFile = FileLockTable.KeyOf(input).Equals(FileLockTable.KeyOf(output));
        if (sameFile && outPosition + count > inPosition && outPosition < inPosition + count)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        if (count == 0)
        {
            return SyscallResult.Zero;
        }

        FileIo.RemovePrivileges(t, output);

        // Linux 5.19+: no filesystem here copies across instances itself, so a copy stays within one.
        if (!ReferenceEquals(FileSystemOf(input), FileSystemOf(output)))
        {
            return SyscallResult.Error(Errno.EXDEV);
        }

        count = Math.Min(count, FileIo.MaxTransfer);
        long done = 0;
        if (count > 0)
        {
            byte[] buffer = ArrayPool<byte>.Shared.Rent((int)Math.Min(count, Chunk));
            try
            {
                while (done < count)
                {
                    int want = (int)Math.Min(count - done, buffer.Length);
                    long readAt = inPosition + done;
                    long n = input.Operations.Read(buffer.AsSpan(0, want), ref readAt);
                    if (n <= 0)
                    {
                        break;
                    }

                    long writeAt = outPosition + done;
                    long w;
                    try
                    {
                        w = output.Operations.Write(buffer.AsSpan(0, (int)n), ref writeAt, false);
                    }
                    catch (ErrnoException) when (done > 0)
                    {
                        break;
                    }

                    done += w;
                    if (w < n)
                    {
                        break;
                    }
                }
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
        }

        EndPosition(t, input, inOffsetAddress, inPosition + done);
        EndPosition(t, output, outOffsetAddress, outPosition + done);

        // As sendfile, one read and one write of what it moved in /proc/PID/io (Linux returns
        // before counting when asked for nothing).
        if (a.A4 != 0)
        {
            t.Group.Io.Count(write: false, done);
            t.Group.Io.Count(write: true, done);
        }

        return SyscallResult.Ok(done);
    }

    /// <summary>An fd that may be read or written: O_PATH ones give EBADF.</summary>
    private static FileDescription Usable(KernelTask t, int fd)
    {
        var file = t.Fds.Get(fd);
        return file.IsPathOnly ? throw ErrnoException.Of(Errno.EBADF) : file;
    }

    private static IFileSystem? FileSystemOf(FileDescription file) => (file.Path?.Inode ?? file.Operations.Inode)?.FileSystem;

    private static Pipe? PipeOf(FileDescription file) => file.Operations is PipeEnd end ? end.Pipe : null;

    private static long StartPosition(KernelTask t, FileDescription file, ulong address) =>
        address != 0 ? t.Mm.ReadValue<long>(address) : Volatile.Read(ref file.Offset);

    private static void EndPosition(KernelTask t, FileDescription file, ulong address, long position)
    {
        if (address != 0)
        {
            t.Mm.WriteValue(address, position);
        }
        else
        {
            lock (file.OffsetLock)
            {
                file.Offset = position;
            }
        }
    }

    private static void CheckPosition(long position)
    {
        if (position < 0)
        {
            throw ErrnoException.Of(Errno.EINVAL);
        }
    }

    // Waits until the pipe holds data; false at end of file (no writers). EAGAIN when it would block.
    private static bool WaitForData(KernelTask t, Pipe pipe, bool nonBlocking, long done)
    {
        while (pipe.Available == 0)
        {
            if (pipe.Writers == 0 || done > 0)
            {
                return false;
            }

            if (nonBlocking)
            {
                throw ErrnoException.Of(Errno.EAGAIN);
            }

            t.WaitUntil(pipe.Waiters, PollEvents.In | PollEvents.HangUp, () => pipe.Available > 0 || pipe.Writers == 0);
        }

        return true;
    }

    // Waits until the pipe has room and returns it; EPIPE (with SIGPIPE) without readers.
    private static int WaitForRoom(KernelTask t, Pipe pipe, bool nonBlocking, long done)
    {
        while (true)
        {
            if (pipe.Readers == 0)
            {
                t.SendSignal(SignalInfo.User(Signals.SIGPIPE, t.Pid, t.Credentials.RealUid));
                throw ErrnoException.Of(Errno.EPIPE);
            }

            int room = pipe.Capacity - pipe.Available;
            if (room > 0)
            {
                return room;
            }

            if (done > 0)
            {
                return 0;
            }

            if (nonBlocking)
            {
                throw ErrnoException.Of(Errno.EAGAIN);
            }

            t.WaitUntil(pipe.Waiters, PollEvents.Out | PollEvents.Error, () => pipe.Readers == 0 || pipe.Capacity - pipe.Available > 0);
        }
    }

    private static long PipeToPipe(KernelTask t, Pipe input, Pipe output, long length, bool nonBlocking, bool consume)
    {
        if (!WaitForData(t, input, nonBlocking, 0))
        {
            return 0;
        }

        int room = WaitForRoom(t, output, nonBlocking, 0);
        byte[] buffer = ArrayPool<byte>.Shared.Rent((int)Math.Min(Math.Min(length, room), Chunk));
        try
        {
            int n = input.Peek(buffer.AsSpan(0, (int)Math.Min(Math.Min(length, room), buffer.Length)));
            long written = output.Write(buffer.AsSpan(0, n));
            if (consume)
            {
                input.Read(buffer.AsSpan(0, (int)written));
            }

            return written;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private static long PipeToFile(KernelTask t, Pipe input, FileDescription output, ref long position, long length, bool nonBlocking)
    {
        if (!WaitForData(t, input, nonBlocking, 0))
        {
            return 0;
        }

        FileIo.RemovePrivileges(t, output);
        byte[] buffer = ArrayPool<byte>.Shared.Rent((int)Math.Min(length, Chunk));
        try
        {
            int n = input.Peek(buffer.AsSpan(0, (int)Math.Min(length, buffer.Length)));
            long written;
            try
            {
                written = output.Operations.Write(buffer.AsSpan(0, n), ref position, false);
            }
            catch (ErrnoException e) when (e.Errno == Errno.EFBIG)
            {
                t.SendSignal(SignalInfo.Kernel(Signals.SIGXFSZ));
                throw;
            }

            input.Read(buffer.AsSpan(0, (int)written));
            return written;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private static long FileToPipe(KernelTask t, FileDescription input, Pipe output, ref long position, long length, bool nonBlocking)
    {
        int room = WaitForRoom(t, output, nonBlocking, 0);
        byte[] buffer = ArrayPool<byte>.Shared.Rent((int)Math.Min(Math.Min(length, room), Chunk));
        try
        {
            long readAt = position;
            long n = input.Operations.Read(buffer.AsSpan(0, (int)Math.Min(Math.Min(length, room), buffer.Length)), ref readAt);
            if (n <= 0)
            {
                return 0;
            }

            long written = output.Write(buffer.AsSpan(0, (int)n));
            position += written;
            return written;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }
}
