using AppKernel.Sentry.Memory;
using AppKernel.Vfs;

namespace AppKernel.Sentry.Kernel;

// PI futexes (FUTEX_LOCK_PI, FUTEX_UNLOCK_PI, FUTEX_TRYLOCK_PI): the word holds the owner's tid;
// the kernel queues waiters and hands the lock over on unlock. Priorities do not exist in the
// sandbox's scheduler, so "inheritance" is only the ownership protocol, which is what programs see.
internal sealed partial class FutexTable
{
    private readonly Dictionary<(MemoryManager?, ulong), Queue<PiWaiter>> piQueues = new();

    private sealed class PiWaiter(int tid)
    {
        public readonly int Tid = tid;
        public readonly WaitQueue Queue = new();
        public volatile bool Granted;
    }

    /// <summary>FUTEX_LOCK_PI: takes the lock or sleeps until an unlock hands it over; EDEADLK if the caller owns it.</summary>
    public void LockPi(KernelTask task, ulong address, long deadline, bool isPrivate)
    {
        var mm = task.Mm;
        uint tid = (uint)task.Tid;
        var key = KeyOf(mm, address, isPrivate);
        PiWaiter waiter;
        lock (buckets)
        {
            bool acquired = false;
            bool deadlock = false;
            bool ownerGone = false;
            mm.AtomicUpdate(address, value =>
            {
                acquired = deadlock = false;
                uint owner = value & RobustFutexes.TidMask;
                if (owner == tid)
                {
                    deadlock = true;
                    return value;
                }

                if (owner == 0 || task.Kernel.Pids.FindTask((int)owner) is null)
                {
                    // Free, or its owner died without releasing it: the caller takes it (OWNER_DIED kept).
                    acquired = true;
                    ownerGone = owner != 0;
                    return tid | (value & RobustFutexes.Waiters) | (owner != 0 ? RobustFutexes.OwnerDied : value & RobustFutexes.OwnerDied);
                }

                return value | RobustFutexes.Waiters;
            });
            if (deadlock)
            {
                throw ErrnoException.Of(Errno.EDEADLK);
            }

            if (acquired)
            {
                if (ownerGone)
                {
                    throw ErrnoException.Of(Errno.EOWNERDEAD);
                }

                return;
            }

            waiter = new PiWaiter(task.Tid);
            if (!piQueues.TryGetValue(key, out var queue))
            {
                queue = new Queue<PiWaiter>();
                piQueues[key] = queue;
            }

            queue.Enqueue(waiter);
        }

        try
        {
            if (!task.WaitUntil(waiter.Queue, PollEvents.In, () => waiter.Granted, deadline))
            {
                throw ErrnoException.Of(Errno.ETIMEDOUT);
            }
        }
        catch
        {
            lock (buckets)
            {
                if (!waiter.Granted && piQueues.TryGetValue(key, out var queue))
                {
                    var rest = queue.Where(w => w != waiter).ToArray();
                    queue.Clear();
                    foreach (var w in rest)
                    {
                        queue.Enqueue(w);
                    }
                }
            }

            if (!waiter.Granted)
            {
                throw;
            }
        }
    }

    /// <summary>FUTEX_TRYLOCK_PI: takes a free lock or fails with EAGAIN (EDEADLK for its owner).</summary>
    public void TryLockPi(KernelTask task, ulong address)
    {
        var mm = task.Mm;
        uint tid = (uint)task.Tid;
        bool acquired = false;
        bool deadlock = false;
        mm.AtomicUpdate(address, value =>
        {
            uint owner = value & RobustFutexes.TidMask;
            deadlock = owner == tid;
            acquired = owner == 0;
            return acquired ? tid | (value & RobustFutexes.Waiters) : value;
        });
        if (deadlock)
        {
            throw ErrnoException.Of(Errno.EDEADLK);
        }

        if (!acquired)
        {
            throw ErrnoException.Of(Errno.EAGAIN);
        }
    }

    /// <summary>FUTEX_UNLOCK_PI: EPERM unless the caller owns it; hands the lock to the first waiter or frees it.</summary>
    public void UnlockPi(KernelTask task, ulong address, bool isPrivate)
    {
        var mm = task.Mm;
        uint tid = (uint)task.Tid;
        var key = KeyOf(mm, address, isPrivate);
        lock (buckets)
        {
            piQueues.TryGetValue(key, out var queue);
            var next = queue is { Count: > 0 } ? queue.Dequeue() : null;
            bool notOwner = false;
            mm.AtomicUpdate(address, value =>
            {
                if ((value & RobustFutexes.TidMask) != tid)
                {
                    notOwner = true;
                    return value;
                }

                notOwner = false;
                if (next is null)
                {
                    return 0;
                }

                return (uint)next.Tid | (queue!.Count > 0 ? RobustFutexes.Waiters : 0);
            });
            if (notOwner)
            {
                if (next is not null)
                {
                    // Put the waiter back at the front: nothing was handed over.
                    var rest = new[] { next }.Concat(queue!).ToArray();
                    queue!.Clear();
                    foreach (var w in rest)
                    {
                        queue.Enqueue(w);
                    }
                }

                throw ErrnoException.Of(Errno.EPERM);
            }

            if (queue is { Count: 0 })
            {
                piQueues.Remove(key);
            }

            if (next is not null)
            {
                next.Granted = true;
                next.Queue.Notify(PollEvents.In);
            }
        }
    }
}
