using AppKernel.Sentry.Memory;
using AppKernel.Vfs;

namespace AppKernel.Sentry.Kernel;

/// <summary>
/// Futex wait queues keyed by (address space, address) for private futexes. A waiter
/// re-checks the word under the bucket lock, so a wake between its check and its sleep is never lost.
/// </summary>
internal sealed partial class FutexTable
{
    private readonly Dictionary<(MemoryManager?, ulong), Bucket> buckets = new();

    private sealed class Bucket
    {
        public readonly List<Waiter> Waiters = new();
    }

    private sealed class Waiter(uint bitset, (MemoryManager?, ulong) key)
    {
        public readonly uint Bitset = bitset;
        public (MemoryManager?, ulong) Key = key;
        public readonly WaitQueue Queue = new();
        public volatile bool Woken;
    }

    /// <summary>
    /// The key of a futex: (address space, address) for private futexes; (none, memory-file offset)
    /// for a shared mapping, so processes mapping the same memory meet on one futex, as Linux keys
    /// shared futexes by inode and offset.
    /// </summary>
    public static (MemoryManager?, ulong) KeyOf(MemoryManager mm, ulong address, bool isPrivate)
    {
        if (!isPrivate && mm.SharedFutexOffset(address) is { } offset)
        {
            return (null, (ulong)offset);
        }

        return (mm, address);
    }

    /// <summary>FUTEX_WAIT(_BITSET): EAGAIN if the word is not <paramref name="expected"/>; ETIMEDOUT at the deadline; ERESTARTSYS on a signal.</summary>
    public void Wait(KernelTask task, ulong address, uint expected, uint bitset, long deadline, bool isPrivate = true)
    {
        if (bitset == 0)
        {
            throw ErrnoException.Of(Errno.EINVAL);
        }

        var mm = task.Mm;
        var key = KeyOf(mm, address, isPrivate);
        var waiter = new Waiter(bitset, key);
        lock (buckets)
        {
            uint value = ReadWord(mm, address);
            if (value != expected)
            {
                throw ErrnoException.Of(Errno.EAGAIN);
            }

            if (!buckets.TryGetValue(key, out var bucket))
            {
                bucket = new Bucket();
                buckets[key] = bucket;
            }

            bucket.Waiters.Add(waiter);
        }

        try
        {
            if (!task.WaitUntil(waiter.Queue, PollEvents.In, () => waiter.Woken, deadline))
            {
                throw ErrnoException.Of(Errno.ETIMEDOUT);
            }
        }
        finally
        {
            lock (buckets)
            {
                // The waiter may have been requeued onto another futex meanwhile.
                if (buckets.TryGetValue(waiter.Key, out var bucket))
                {
                    bucket.Waiters.Remove(waiter);
                    if (bucket.Waiters.Count == 0)
                    {
                        buckets.Remove(waiter.Key);
                    }
                }
            }
        }
    }

    /// <summary>FUTEX_WAKE(_BITSET): wakes up to <paramref name="count"/> waiters whose bitset intersects; returns how many.</summary>
    public int Wake(MemoryManager mm, ulong address, int count, uint bitset, bool isPrivate = true)
    {
        var woken = new List<Waiter>();
        var key = KeyOf(mm, address, isPrivate);
        lock (buckets)
        {
            if (!buckets.TryGetValue(key, out var bucket))
            {
                return 0;
            }

            foreach (var waiter in bucket.Waiters)
            {
                if (woken.Count >= count)
                {
                    break;
                }

                if (!waiter.Woken && (waiter.Bitset & bitset) != 0)
                {
                    waiter.Woken = true;
                    woken.Add(waiter);
                }
            }

            bucket.Waiters.RemoveAll(w => w.Woken);
        }

        foreach (var waiter in woken)
        {
            waiter.Queue.Notify(PollEvents.In);
        }

        return woken.Count;
    }

    /// <summary>FUTEX_REQUEUE/CMP_REQUEUE: wakes some waiters and moves others to another futex.</summary>
    public int Requeue(MemoryManager mm, ulong address, int wakeCount, ulong target, int requeueCount, uint? expected, bool isPrivate = true)
    {
        var woken = new List<Waiter>();
        int moved = 0;
        var key = KeyOf(mm, address, isPrivate);
        var targetKey = KeyOf(mm, target, isPrivate);
        lock (buckets)
        {
            if (expected is { } value && ReadWord(mm, address) != value)
            {
                throw ErrnoException.Of(Errno.EAGAIN);
            }

            if (!buckets.TryGetValue(key, out var bucket))
            {
                return 0;
            }

            foreach (var waiter in bucket.Waiters.ToArray())
            {
                if (woken.Count < wakeCount)
                {
                    waiter.Woken = true;
                    woken.Add(waiter);
                    bucket.Waiters.Remove(waiter);
                }
                else if (moved < requeueCount && targetKey != key)
                {
                    bucket.Waiters.Remove(waiter);
                    if (!buckets.TryGetValue(targetKey, out var targetBucket))
                    {
                        targetBucket = new Bucket();
                        buckets[targetKey] = targetBucket;
                    }

                    targetBucket.Waiters.Add(waiter);
                    waiter.Key = targetKey;
                    moved++;
                }
            }

            if (bucket.Waiters.Count == 0)
            {
                buckets.Remove(key);
            }
        }

        foreach (var waiter in woken)
        {
            waiter.Queue.Notify(PollEvents.In);
        }

        return woken.Count + moved;
    }

    private static uint ReadWord(MemoryManager mm, ulong address)
    {
        if ((address & 3) != 0)
        {
            throw ErrnoException.Of(Errno.EINVAL);
        }

        Span<byte> word = stackalloc byte[4];
        mm.Read(address, word);
        return BitConverter.ToUInt32(word);
    }
}
