using System.Buffers;
using AppKernel.Sentry.Abi;
using AppKernel.Sentry.Kernel;
using AppKernel.Sentry.Kernel.Events;
using AppKernel.Sentry.Vfs;
using AppKernel.Vfs;

namespace AppKernel.Sentry.Syscalls;

/// <summary>
/// Reading and writing a file description on a task's behalf: offsets, blocking (interruptible
/// by signals), partial transfers, EPIPE/SIGPIPE and EFBIG/SIGXFSZ, in chunks through a pooled buffer.
/// </summary>
internal static class FileIo
{
    /// <summary>Linux's MAX_RW_COUNT: one read or write moves at most this much.</summary>
    public const long MaxTransfer = 0x7ffff000;

    private const int Chunk = 256 * 1024;

    /// <summary>Reads into program memory; <paramref name="position"/> is pread's offset, or null for the description's.</summary>
    public static long Read(KernelTask task, FileDescription file, ulong buffer, long count, long? position)
    {
        if (!file.CanRead)
        {
            throw ErrnoException.Of(Errno.EBADF);
        }

        count = Math.Min(count, MaxTransfer);
        if (count == 0)
        {
            return 0;
        }

        var ops = file.Operations;
        if (ops is IRecordFile record)
        {
            return ReadRecord(task, file, record, buffer, count);
        }

        byte[] chunk = ArrayPool<byte>.Shared.Rent((int)Math.Min(count, Chunk));
        long done = 0;
        try
        {
            while (done < count)
            {
                int want = (int)Math.Min(count - done, chunk.Length);
                long n;
                try
                {
                    n = ReadOnce(task, file, chunk.AsSpan(0, want), position, done);
                }
                catch (ErrnoException) when (done > 0)
                {
                    return done;
                }

                if (n <= 0)
                {
                    break;
                }

                try
                {
                    task.Mm.Write(buffer + (ulong)done, chunk.AsSpan(0, (int)n));
                }
                catch (ErrnoException) when (done > 0)
                {
                    return done;
                }

                done += n;
                if (ops.IsStream || n < want)
                {
                    break;
                }
            }

            if (done > 0 && file.Notify is { Active: true } notify)
            {
                notify.FileEvent(file.Path, file.Path!.Value.Inode, InotifyMask.Access);
            }

            return done;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(chunk);
        }
    }

    private static long ReadOnce(KernelTask task, FileDescription file, Span<byte> destination, long? position, long done)
    {
        var ops = file.Operations;
        if (ops is ISelfBlockingRead self)
        {
            return self.Read(task, destination, file.NonBlocking || done > 0);
        }

        while (true)
        {
            try
            {
                if (ops.IsStream)
                {
                    long ignored = 0;
                    return ops.Read(destination, ref ignored);
                }

                if (position is { } at)
                {
                    long offset = at + done;
                    return ops.Read(destination, ref offset);
                }

                lock (file.OffsetLock)
                {
                    return ops.Read(destination, ref file.Offset);
                }
            }
            catch (ErrnoException e) when (e.Errno == Errno.EAGAIN && !file.NonBlocking && done == 0)
            {
                task.WaitUntil(ops.Waiters, PollEvents.In | PollEvents.HangUp | PollEvents.ReadHangUp,
                    () => ops.Poll(PollEvents.In | PollEvents.HangUp) != 0);
            }
        }
    }

    /// <summary>Writes from program memory; blocking descriptions write everything unless a signal interrupts.</summary>
    public static long Write(KernelTask task, FileDescription file, ulong buffer, long count, long? position)
    {
        if (!file.CanWrite)
        {
            throw ErrnoException.Of(Errno.EBADF);
        }

        count = Math.Min(count, MaxTransfer);
        if (count == 0)
        {
            // A zero-length write to a regular file still checks nothing more; to a pipe it is a no-op.
            return 0;
        }

        var ops = file.Operations;
        if (ops is IRecordFile record)
        {
            return WriteRecord(task, file, record, buffer, count);
        }

        if (!ops.IsStream)
        {
            RemovePrivileges(task, file);
        }

        byte[] chunk = ArrayPool<byte>.Shared.Rent((int)Math.Min(count, Chunk));
        long done = 0;
        bool append = (file.Flags & OpenFlags.Append) != 0;
        try
        {
            while (done < count)
            {
                int want = (int)Math.Min(count - done, chunk.Length);
                try
                {
                    task.Mm.Read(buffer + (ulong)done, chunk.AsSpan(0, want));
                }
                catch (ErrnoException) when (done > 0)
                {
                    return done;
                }

                int written = 0;
                while (written < want)
                {
                    long n;
                    try
                    {
                        n = WriteOnce(task, file, chunk.AsSpan(written, want - written), position, done + written, append);
                    }
                    catch (ErrnoException e)
                    {
                        Signal(task, e.Errno);
                        if (done + written > 0 && e.Errno is Errno.ERESTARTSYS or Errno.EAGAIN or Errno.EPIPE or Errno.EFBIG or Errno.ENOSPC)
                        {
                            return done + written;
                        }

                        throw;
                    }

                    written += (int)n;
                    if (!ops.IsStream && n == 0)
                    {
                        return done + written;
                    }
                }

                done += written;
            }

            if (done > 0 && file.Notify is { Active: true } notify)
            {
                notify.FileEvent(file.Path, file.Path!.Value.Inode, InotifyMask.Modify);
            }

            return done;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(chunk);
        }
    }

    /// <summary>Linux's file_remove_privs before data changes through <paramref name="file"/>: set-user-ID and set-group-ID go unless the task holds CAP_FSETID.</summary>
    public static void RemovePrivileges(KernelTask task, FileDescription file)
    {
        if (file.Operations.Inode is { } inode && Permissions.RemovePrivileges(inode, task.Credentials))
        {
            task.Kernel.Vfs.Inotify.FileEvent(file.Path, inode, InotifyMask.Attrib);
        }
    }

    private static long WriteOnce(KernelTask task, FileDescription file, ReadOnlySpan<byte> source, long? position, long done, bool append)
    {
        var ops = file.Operations;
        while (true)
        {
            try
            {
                if (ops.IsStream)
                {
                    long ignored = 0;
                    return ops.Write(source, ref ignored, false);
                }

                if (position is { } at)
                {
                    long offset = at + done;
                    return ops.Write(source, ref offset, append);
                }

                lock (file.OffsetLock)
                {
                    return ops.Write(source, ref file.Offset, append);
                }
            }
            catch (ErrnoException e) when (e.Errno == Errno.EAGAIN && !file.NonBlocking)
            {
                task.WaitUntil(ops.Waiters, PollEvents.Out | PollEvents.Error,
                    () => ops.Poll(PollEvents.Out | PollEvents.Error) != 0);
            }
        }
    }

    // Record files (eventfd, timerfd, signalfd) move at most a few records: one call each way.
    private const int RecordChunk = 64 * 1024;

    private static long ReadRecord(KernelTask task, FileDescription file, IRecordFile record, ulong buffer, long count)
    {
        byte[] chunk = ArrayPool<byte>.Shared.Rent((int)Math.Min(count, RecordChunk));
        try
        {
            var span = chunk.AsSpan(0, (int)Math.Min(count, RecordChunk));
            long n = record.Read(task, span, file.NonBlocking);
            task.Mm.Write(buffer, span[..(int)n]);
            return n;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(chunk);
        }
    }

    private static long WriteRecord(KernelTask task, FileDescription file, IRecordFile record, ulong buffer, long count)
    {
        // The only writable record is eventfd's 8-byte counter, and Linux takes exactly 8 bytes:
        // other counts are refused (EINVAL, by the file) before program memory is read.
        Span<byte> value = stackalloc byte[9];
        value = value[..(int)Math.Min(count, 9)];
        value.Clear();
        if (value.Length == 8)
        {
            task.Mm.Read(buffer, value);
        }

        return record.Write(task, value, file.NonBlocking);
    }

    /// <summary>The signals some write errors bring: SIGPIPE for a broken pipe, SIGXFSZ past a size limit.</summary>
    private static void Signal(KernelTask task, Errno errno)
    {
        if (errno == Errno.EPIPE)
        {
            task.SendSignal(SignalInfo.User(Signals.SIGPIPE, task.Pid, task.Credentials.RealUid));
        }
        else if (errno == Errno.EFBIG)
        {
            task.SendSignal(SignalInfo.Kernel(Signals.SIGXFSZ));
        }
    }
}
