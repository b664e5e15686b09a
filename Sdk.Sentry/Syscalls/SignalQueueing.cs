using System.Runtime.InteropServices;
using AppKernel.Sentry.Abi;
using AppKernel.Sentry.Kernel;

namespace AppKernel.Sentry.Syscalls;

/// <summary>
/// What the calls that queue a program-made siginfo share (rt_sigqueueinfo, rt_tgsigqueueinfo,
/// pidfd_send_signal): reading the siginfo as Linux does, the kill permission, and RLIMIT_SIGPENDING.
/// </summary>
internal static class SignalQueueing
{
    /// <summary>The part of siginfo the kernel keeps (kernel_siginfo): signo, errno, code and a 32-byte union.</summary>
    private const int KernelSiginfoSize = 48;

    private const int SI_DETHREAD = -7, SI_ASYNCNL = -60, NSIGPOLL = 6;

    /// <summary>
    /// Reads a siginfo from the program. Only its first 48 bytes count; for a layout the kernel
    /// does not know (an unknown si_code) the rest must be zero, else E2BIG. With
    /// <paramref name="signal"/> the signal number is taken from the call, not the siginfo.
    /// </summary>
    public static SignalInfo ReadUserSiginfo(KernelTask t, ulong address, int? signal)
    {
        Span<byte> bytes = stackalloc byte[128];
        t.Mm.Read(address, bytes[..KernelSiginfoSize]);
        var info = MemoryMarshal.Read<SignalInfo>(bytes);
        if (signal is { } number)
        {
            info.Signo = number;
        }

        if (!KnownLayout(info.Signo, info.Code))
        {
            t.Mm.Read(address + KernelSiginfoSize, bytes[KernelSiginfoSize..]);
            if (bytes[KernelSiginfoSize..].ContainsAnyExcept((byte)0))
            {
                throw ErrnoException.Of(Errno.E2BIG);
            }
        }

        return info;
    }

    /// <summary>Linux's known_siginfo_layout.</summary>
    private static bool KnownLayout(int signal, int code)
    {
        if (code == Signals.SI_KERNEL)
        {
            return true;
        }

        if (code > Signals.SI_USER)
        {
            int limit = signal switch
            {
                Signals.SIGILL => 11,
                Signals.SIGFPE => 15,
                Signals.SIGSEGV => 10,
                Signals.SIGBUS => 5,
                Signals.SIGTRAP => 6,
                Signals.SIGCHLD => 6,
                Signals.SIGIO => NSIGPOLL,
                Signals.SIGSYS => 2,
                _ => NSIGPOLL,
            };
            return code <= limit;
        }

        return code >= SI_DETHREAD || code == SI_ASYNCNL;
    }

    /// <summary>
    /// Linux's check_kill_permission for a signal <paramref name="info"/> from <paramref name="sender"/>:
    /// EINVAL for a bad number; for signals from user space (si_code ≤ 0) the sender's real or
    /// effective uid must match the target's real or saved uid, unless root, the same process, or
    /// SIGCONT within the session.
    /// </summary>
    public static Errno CheckPermission(KernelTask sender, KernelTask target, in SignalInfo info)
    {
        if ((uint)info.Signo > Signals.NSIG)
        {
            return Errno.EINVAL;
        }

        if (info.Code > 0 || sender.Group == target.Group)
        {
            return Errno.None;
        }

        var mine = sender.Credentials;
        var theirs = target.Credentials;
        if (mine.IsRoot || mine.EffectiveUid == theirs.SavedUid || mine.EffectiveUid == theirs.RealUid ||
            mine.RealUid == theirs.SavedUid || mine.RealUid == theirs.RealUid)
        {
            return Errno.None;
        }

        return info.Signo == Signals.SIGCONT && target.Group.Session == sender.Group.Session ? Errno.None : Errno.EPERM;
    }

    /// <summary>
    /// True when queueing one more signal for <paramref name="target"/> would pass its
    /// RLIMIT_SIGPENDING: Linux counts, per user, the queued signals and the POSIX timers (each
    /// holds a slot). A real-time signal with a program's siginfo then fails with EAGAIN.
    /// </summary>
    public static bool OverSigpendingLimit(KernelTask target)
    {
        ulong limit = target.Group.Limits.Get(ResourceLimits.SIGPENDING).Current;
        if (limit == ResourceLimits.Infinity)
        {
            return false;
        }

        int uid = target.Credentials.RealUid;
        ulong count = 0;
        foreach (var group in target.Kernel.Pids.Groups())
        {
            if (group.Leader?.Credentials.RealUid != uid)
            {
                continue;
            }

            long queued = group.SharedPending.Count + group.Timers.PosixTimerCount - group.Timers.QueuedTimerSignals;
            foreach (var task in group.Tasks)
            {
                queued += task.Pending.Count;
            }

            count += (ulong)Math.Max(0, queued);
        }

        return count + 1 > limit;
    }
}
