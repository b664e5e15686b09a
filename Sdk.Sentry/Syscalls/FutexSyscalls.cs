using AppKernel.Sentry.Abi;
using AppKernel.Sentry.Kernel;
using AppKernel.Syscalls;

namespace AppKernel.Sentry.Syscalls;

/// <summary>futex(2): wait, wake, bitsets, requeue and wake-op. Priority-inheritance operations are not offered.</summary>
internal static class FutexSyscalls
{
    private const int FUTEX_WAIT = 0, FUTEX_WAKE = 1, FUTEX_REQUEUE = 3, FUTEX_CMP_REQUEUE = 4, FUTEX_WAKE_OP = 5,
        FUTEX_LOCK_PI = 6, FUTEX_UNLOCK_PI = 7, FUTEX_TRYLOCK_PI = 8, FUTEX_LOCK_PI2 = 13,
        FUTEX_WAIT_BITSET = 9, FUTEX_WAKE_BITSET = 10, FUTEX_PRIVATE_FLAG = 128, FUTEX_CLOCK_REALTIME = 256;

    [Syscall(202, SupportLevel.Partial, Note = "FUTEX_WAIT_REQUEUE_PI and FUTEX_CMP_REQUEUE_PI give ENOSYS; PI futexes hand over ownership without priorities")]
    public static SyscallResult Futex(ISyscallContext c)
    {
        var t = c.Task();
        var a = c.Arguments;
        ulong address = a.A0;
        int op = (int)a.A1;
        int command = op & ~(FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME);
        uint value = (uint)a.A2;
        var futexes = t.Kernel.Futexes;
        bool isPrivate = (op & FUTEX_PRIVATE_FLAG) != 0;
        if ((op & FUTEX_CLOCK_REALTIME) != 0 && command is not (FUTEX_WAIT or FUTEX_WAIT_BITSET or FUTEX_LOCK_PI2))
        {
            return SyscallResult.Error(Errno.ENOSYS);
        }

        switch (command)
        {
            case FUTEX_WAIT or FUTEX_WAIT_BITSET:
            {
                long deadline = -1;
                if (a.A3 != 0)
                {
                    var ts = t.Mm.ReadValue<LinuxTimespec>(a.A3);
                    if (ts.Seconds < 0 || (ulong)ts.Nanoseconds >= 1_000_000_000)
                    {
                        return SyscallResult.Error(Errno.EINVAL);
                    }

                    long ns = ts.Seconds * 1_000_000_000 + ts.Nanoseconds;
                    if (command == FUTEX_WAIT)
                    {
                        deadline = Kernel.Kernel.Now + ns; // relative, CLOCK_MONOTONIC
                    }
                    else
                    {
                        int clock = (op & FUTEX_CLOCK_REALTIME) != 0 ? TimeSyscalls.CLOCK_REALTIME : TimeSyscalls.CLOCK_MONOTONIC;
                        deadline = Kernel.Kernel.Now + (ns - TimeSyscalls.ClockNow(t, clock));
                    }
                }

                uint bitset = command == FUTEX_WAIT ? uint.MaxValue : (uint)a.A5;
                futexes.Wait(t, address, value, bitset, deadline, isPrivate);
                return SyscallResult.Zero;
            }

            case FUTEX_WAKE or FUTEX_WAKE_BITSET:
            {
                uint bitset = command == FUTEX_WAKE ? uint.MaxValue : (uint)a.A5;
                if (bitset == 0)
                {
                    return SyscallResult.Error(Errno.EINVAL);
                }

                if ((address & 3) != 0)
                {
                    return SyscallResult.Error(Errno.EINVAL);
                }

                return SyscallResult.Ok(futexes.Wake(t.Mm, address, (int)Math.Min(value, int.MaxValue), bitset, isPrivate));
            }

            case FUTEX_REQUEUE or FUTEX_CMP_REQUEUE:
            {
                int requeue = (int)Math.Min(a.A3, int.MaxValue);
                if ((int)value < 0 || (long)a.A3 < 0)
                {
                    return SyscallResult.Error(Errno.EINVAL);
                }

                uint? expected = command == FUTEX_CMP_REQUEUE ? (uint)a.A5 : null;
                return SyscallResult.Ok(futexes.Requeue(t.Mm, address, (int)Math.Min(value, int.MaxValue), a.A4, requeue, expected, isPrivate));
            }

            case FUTEX_LOCK_PI or FUTEX_LOCK_PI2:
            {
                if ((address & 3) != 0)
                {
                    return SyscallResult.Error(Errno.EINVAL);
                }

                long deadline = -1;
                if (a.A3 != 0)
                {
                    // The timeout is absolute: CLOCK_REALTIME for LOCK_PI, the flag's clock for LOCK_PI2.
                    var ts = t.Mm.ReadValue<LinuxTimespec>(a.A3);
                    if (ts.Seconds < 0 || (ulong)ts.Nanoseconds >= 1_000_000_000)
                    {
                        return SyscallResult.Error(Errno.EINVAL);
                    }

                    int clock = command == FUTEX_LOCK_PI || (op & FUTEX_CLOCK_REALTIME) != 0 ? TimeSyscalls.CLOCK_REALTIME : TimeSyscalls.CLOCK_MONOTONIC;
                    deadline = Kernel.Kernel.Now + (ts.Seconds * 1_000_000_000 + ts.Nanoseconds - TimeSyscalls.ClockNow(t, clock));
                }

                futexes.LockPi(t, address, deadline, isPrivate);
                return SyscallResult.Zero;
            }

            case FUTEX_TRYLOCK_PI:
                futexes.TryLockPi(t, address);
                return SyscallResult.Zero;
            case FUTEX_UNLOCK_PI:
                futexes.UnlockPi(t, address, isPrivate);
                return SyscallResult.Zero;

            case FUTEX_WAKE_OP:
                return WakeOp(t, address, value, (int)Math.Min(a.A3, int.MaxValue), a.A4, (uint)a.A5, isPrivate);

            default:
                return SyscallResult.Error(Errno.ENOSYS);
        }
    }

    private static SyscallResult WakeOp(KernelTask t, ulong address, uint count, int count2, ulong address2, uint encoded, bool isPrivate)
    {
        int operation = (int)(encoded >> 28) & 7;
        bool shift = ((encoded >> 28) & 8) != 0;
        int comparison = (int)(encoded >> 24) & 15;
        uint operand = (encoded >> 12) & 0xfff;
        uint comparand = encoded & 0xfff;
        if (shift)
        {
            operand = operand > 31 ? 0 : 1u << (int)operand;
        }

        if (operation > 4 || comparison > 5)
        {
            return SyscallResult.Error(Errno.ENOSYS);
        }

        uint old = t.Mm.AtomicUpdate(address2, v => operation switch
        {
            0 => operand,
            1 => v + operand,
            2 => v | operand,
            3 => v & ~operand,
            _ => v ^ operand,
        });
        int woken = t.Kernel.Futexes.Wake(t.Mm, address, (int)Math.Min(count, int.MaxValue), uint.MaxValue, isPrivate);
        bool condition = comparison switch
        {
            0 => (int)old == (int)comparand,
            1 => (int)old != (int)comparand,
            2 => (int)old < (int)comparand,
            3 => (int)old <= (int)comparand,
            4 => (int)old > (int)comparand,
            _ => (int)old >= (int)comparand,
        };
        if (condition)
        {
            woken += t.Kernel.Futexes.Wake(t.Mm, address2, count2, uint.MaxValue, isPrivate);
        }

        return SyscallResult.Ok(woken);
    }
}
