using System.Buffers.Binary;
using AppKernel.Vfs;

namespace AppKernel.Sentry.Kernel.Events;

/// <summary>
/// eventfd(2): a 64-bit counter. A write adds (blocking, or EAGAIN, while the sum would reach
/// 0xffffffffffffffff); a read takes the whole count, or 1 in semaphore mode (blocking, or
/// EAGAIN, while it is 0). Readable while the count is above 0, writable while 1 more fits.
/// </summary>
internal sealed class EventFd : IFileOperations, IRecordFile
{
    /// <summary>The largest count: ULLONG_MAX - 1.</summary>
    public const ulong MaxCount = ulong.MaxValue - 1;

    private readonly object gate = new();
    private readonly bool semaphore;
    private ulong count;

    public EventFd(ulong initial, bool semaphore)
    {
        count = initial;
        this.semaphore = semaphore;
    }

    public IInode? Inode => AnonymousInode.Instance;

    public bool IsStream => true;

    public WaitQueue Waiters { get; } = new();

    WaitQueue? IFileOperations.Waiters => Waiters;

    /// <summary>The counter now (for /proc's fdinfo and tests).</summary>
    public ulong Count
    {
        get
        {
            lock (gate)
            {
                return count;
            }
        }
    }

    public PollEvents Poll(PollEvents mask)
    {
        PollEvents ready = 0;
        lock (gate)
        {
            if (count > 0)
            {
                ready |= PollEvents.In | PollEvents.ReadNormal;
            }

            if (count == ulong.MaxValue)
            {
                ready |= PollEvents.Error;
            }

            if (count < MaxCount)
            {
                ready |= PollEvents.Out | PollEvents.WriteNormal;
            }
        }

        return ready & (mask | PollEvents.Error | PollEvents.HangUp);
    }

    public long Read(KernelTask task, Span<byte> buffer, bool nonBlocking)
    {
        if (buffer.Length < 8)
        {
            throw ErrnoException.Of(Errno.EINVAL);
        }

        ulong value;
        while (!TryTake(out value))
        {
            if (nonBlocking)
            {
                throw ErrnoException.Of(Errno.EAGAIN);
            }

            task.WaitUntil(Waiters, PollEvents.In, () => Count > 0);
        }

        Waiters.Notify(PollEvents.Out | PollEvents.WriteNormal);
        BinaryPrimitives.WriteUInt64LittleEndian(buffer, value);
        return 8;
    }

    public long Write(KernelTask task, ReadOnlySpan<byte> buffer, bool nonBlocking)
    {
        // Exactly 8 bytes, as Linux 6.x requires (older kernels took the first 8 of a longer write).
        if (buffer.Length != 8)
        {
            throw ErrnoException.Of(Errno.EINVAL);
        }

        ulong value = BinaryPrimitives.ReadUInt64LittleEndian(buffer);
        if (value == ulong.MaxValue)
        {
            throw ErrnoException.Of(Errno.EINVAL);
        }

        while (!TryAdd(value))
        {
            if (nonBlocking)
            {
                throw ErrnoException.Of(Errno.EAGAIN);
            }

            task.WaitUntil(Waiters, PollEvents.Out, () => Fits(value));
        }

        // Every write wakes readers, even of 0 (an edge-triggered epoll sees it), as on Linux.
        Waiters.Notify(PollEvents.In | PollEvents.ReadNormal);
        return 8;
    }

    private bool TryTake(out ulong value)
    {
        lock (gate)
        {
            if (count == 0)
            {
                value = 0;
                return false;
            }

            value = semaphore ? 1 : count;
            count -= value;
            return true;
        }
    }

    private bool TryAdd(ulong value)
    {
        lock (gate)
        {
            if (ulong.MaxValue - count <= value)
            {
                return false;
            }

            count += value;
            return true;
        }
    }

    private bool Fits(ulong value)
    {
        lock (gate)
        {
            return ulong.MaxValue - count > value;
        }
    }
}
