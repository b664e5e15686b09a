using AppKernel.Sentry.Memory;
using AppKernel.Syscalls;

namespace AppKernel.Sentry.Kernel;

/// <summary>
/// Robust futexes (set_robust_list): when a thread dies holding robust mutexes, each one's word gets
/// FUTEX_OWNER_DIED and a waiter is woken, so the next locker learns the owner died (EOWNERDEAD).
/// </summary>
internal static class RobustFutexes
{
    public const uint Waiters = 0x80000000, OwnerDied = 0x40000000, TidMask = 0x3fffffff;
    private const int ListLimit = 2048; // Linux's ROBUST_LIST_LIMIT: a loop in the list must not hang the kernel

    /// <summary>Walks the dying thread's robust list (struct robust_list_head) and releases its mutexes.</summary>
    public static void Release(KernelTask task, MemoryManager mm)
    {
        ulong head = task.RobustList;
        if (head == 0)
        {
            return;
        }

        try
        {
            ulong entry = mm.ReadValue<ulong>(head);
            long futexOffset = mm.ReadValue<long>(head + 8);
            ulong pending = mm.ReadValue<ulong>(head + 16);
            for (int i = 0; entry != head && entry != 0 && i < ListLimit; i++)
            {
                ulong next = mm.ReadValue<ulong>(entry);
                if (entry != pending)
                {
                    HandleDeath(task, mm, (ulong)((long)(entry & ~1UL) + futexOffset));
                }

                entry = next;
            }

            if (pending != 0)
            {
                HandleDeath(task, mm, (ulong)((long)(pending & ~1UL) + futexOffset));
            }
        }
        catch (ErrnoException)
        {
            // A corrupt list is abandoned, as Linux does.
        }
    }

    private static void HandleDeath(KernelTask task, MemoryManager mm, ulong word)
    {
        bool wake = false;
        uint tid = (uint)task.Tid;
        mm.AtomicUpdate(word, value =>
        {
            if ((value & TidMask) != tid)
            {
                wake = false;
                return value;
            }

            wake = (value & Waiters) != 0;
            return (value & Waiters) | OwnerDied;
        });
        if (wake)
        {
            task.Kernel.Futexes.Wake(mm, word, 1, uint.MaxValue, isPrivate: false);
        }
    }
}
