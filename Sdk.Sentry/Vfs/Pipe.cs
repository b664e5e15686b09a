using AppKernel.Syscalls;
using AppKernel.Vfs;

namespace AppKernel.Sentry.Vfs;

/// <summary>
/// A pipe's buffer: 64 KiB by default, writes of up to PIPE_BUF bytes atomic, EOF when the
/// last writer closes, EPIPE (and SIGPIPE, sent by the caller) when the last reader has.
/// </summary>
internal sealed class Pipe
{
    public const int PipeBuf = 4096;
    public const int DefaultCapacity = 65536;
    public const int MaxCapacity = 1 << 20;

    private readonly object gate = new();
    private byte[] buffer = new byte[DefaultCapacity];
    private int head;
    private int count;
    private int readers;
    private int writers;

    public WaitQueue Waiters { get; } = new();

    /// <summary>An id for /proc (pipe:[N]) and fstat's st_ino.</summary>
    public ulong Id { get; } = (ulong)Interlocked.Increment(ref nextId);

    private static long nextId = 4096;

    public int Capacity
    {
        get
        {
            lock (gate)
            {
                return buffer.Length;
            }
        }
    }

    public int Available
    {
        get
        {
            lock (gate)
            {
                return count;
            }
        }
    }

    public int Readers
    {
        get
        {
            lock (gate)
            {
                return readers;
            }
        }
    }

    public int Writers
    {
        get
        {
            lock (gate)
            {
                return writers;
            }
        }
    }

    /// <summary>Counts how many times the FIFO has had a reader/writer (a FIFO open waits for the other side).</summary>
    public int ReaderGeneration { get; private set; }

    public int WriterGeneration { get; private set; }

    public void AddEnd(bool reader)
    {
        lock (gate)
        {
            if (reader)
            {
                readers++;
                ReaderGeneration++;
            }
            else
            {
                writers++;
                WriterGeneration++;
            }
        }

        Waiters.Notify(PollEvents.In | PollEvents.Out | PollEvents.ReadNormal | PollEvents.WriteNormal);
    }

    public void RemoveEnd(bool reader)
    {
        lock (gate)
        {
            if (reader)
            {
                readers--;
            }
            else
            {
                writers--;
            }
        }

        Waiters.Notify(reader ? PollEvents.Out | PollEvents.Error : PollEvents.In | PollEvents.HangUp);
    }

    /// <summary>Reads what is there; 0 at EOF; EAGAIN when empty with writers left.</summary>
    public long Read(Span<byte> destination)
    {
        int n;
        lock (gate)
        {
            if (count == 0)
            {
                return writers == 0 ? 0 : throw ErrnoException.Of(Errno.EAGAIN);
            }

            n = Math.Min(destination.Length, count);
            int first = Math.Min(n, buffer.Length - head);
            buffer.AsSpan(head, first).CopyTo(destination);
            buffer.AsSpan(0, n - first).CopyTo(destination[first..]);
            head = (head + n) % buffer.Length;
            count -= n;
        }

        Waiters.Notify(PollEvents.Out | PollEvents.WriteNormal);
        return n;
    }

    /// <summary>Copies up to <paramref name="destination"/>'s length without consuming (FIONREAD-free peek for tee-like uses).</summary>
    public int Peek(Span<byte> destination)
    {
        lock (gate)
        {
            int n = Math.Min(destination.Length, count);
            int first = Math.Min(n, buffer.Length - head);
            buffer.AsSpan(head, first).CopyTo(destination);
            buffer.AsSpan(0, n - first).CopyTo(destination[first..]);
            return n;
        }
    }

    /// <summary>Writes what fits (all or nothing up to PIPE_BUF); EAGAIN when nothing fits; EPIPE without readers.</summary>
    public long Write(ReadOnlySpan<byte> source)
    {
        int n;
        lock (gate)
        {
            if (readers == 0)
            {
                throw ErrnoException.Of(Errno.EPIPE);
            }

            int free = buffer.Length - count;
            if (free == 0 || (source.Length <= PipeBuf && free < source.Length))
            {
                throw ErrnoException.Of(Errno.EAGAIN);
            }

            n = Math.Min(free, source.Length);
            int tail = (head + count) % buffer.Length;
            int first = Math.Min(n, buffer.Length - tail);
            source[..first].CopyTo(buffer.AsSpan(tail));
            source[first..n].CopyTo(buffer);
            count += n;
        }

        Waiters.Notify(PollEvents.In | PollEvents.ReadNormal);
        return n;
    }

    public PollEvents Poll(PollEvents mask, bool reader)
    {
        PollEvents ready = 0;
        lock (gate)
        {
            if (reader)
            {
                if (count > 0)
                {
                    ready |= PollEvents.In | PollEvents.ReadNormal;
                }

                if (writers == 0 && WriterGeneration > 0)
                {
                    ready |= PollEvents.HangUp;
                }
            }
            else
            {
                // As Linux's pipe_poll: writable while there is room, and an error (as well) once no reader is left.
                if (readers == 0)
                {
                    ready |= PollEvents.Error;
                }

                if (buffer.Length - count >= PipeBuf || buffer.Length - count == buffer.Length)
                {
                    ready |= PollEvents.Out | PollEvents.WriteNormal;
                }
            }
        }

        return ready & (mask | PollEvents.Error | PollEvents.HangUp);
    }

    /// <summary>F_SETPIPE_SZ: rounds up to a power of two pages; EBUSY if the data would not fit.</summary>
    public int Resize(int size)
    {
        if (size <= 0 || size > MaxCapacity)
        {
            throw ErrnoException.Of(size <= 0 ? Errno.EINVAL : Errno.EPERM);
        }

        int capacity = 4096;
        while (capacity < size)
        {
            capacity <<= 1;
        }

        lock (gate)
        {
            if (count > capacity)
            {
                throw ErrnoException.Of(Errno.EBUSY);
            }

            var next = new byte[capacity];
            int first = Math.Min(count, buffer.Length - head);
            buffer.AsSpan(head, first).CopyTo(next);
            buffer.AsSpan(0, count - first).CopyTo(next.AsSpan(first));
            buffer = next;
            head = 0;
            return capacity;
        }
    }
}

/// <summary>One end of a pipe as an open file.</summary>
internal sealed class PipeEnd : IFileOperations
{
    private int released;

    public PipeEnd(Pipe pipe, bool reader, IInode? inode = null)
    {
        Pipe = pipe;
        IsReader = reader;
        Inode = inode;
        pipe.AddEnd(reader);
    }

    public Pipe Pipe { get; }

    public bool IsReader { get; }

    public IInode? Inode { get; }

    public bool IsStream => true;

    public WaitQueue? Waiters => Pipe.Waiters;

    public long Read(Span<byte> buffer, ref long offset) =>
        IsReader ? Pipe.Read(buffer) : throw ErrnoException.Of(Errno.EBADF);

    public long Write(ReadOnlySpan<byte> buffer, ref long offset, bool append) =>
        !IsReader ? Pipe.Write(buffer) : throw ErrnoException.Of(Errno.EBADF);

    public PollEvents Poll(PollEvents mask) => Pipe.Poll(mask, IsReader);

    public long Ioctl(uint request, ulong argument, AppKernel.Syscalls.ISyscallContext context)
    {
        if (request == Abi.LinuxConstants.FIONREAD)
        {
            context.Memory.WriteValue(argument, Pipe.Available);
            return 0;
        }

        throw ErrnoException.Of(Errno.ENOTTY);
    }

    public void Release()
    {
        if (Interlocked.Exchange(ref released, 1) == 0)
        {
            Pipe.RemoveEnd(IsReader);
        }
    }
}
