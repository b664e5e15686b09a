using AppKernel.Sentry.Abi;
using AppKernel.Sentry.Kernel;
using AppKernel.Syscalls;

namespace AppKernel.Sentry.Syscalls;

/// <summary>Waiting for signals (pause, rt_sigsuspend, rt_sigtimedwait) and queueing them with a siginfo (rt_sigqueueinfo, rt_tgsigqueueinfo).</summary>
internal static class SignalWaitSyscalls
{
    private const ulong SigsetSize = 8;

    [Syscall(34)]
    public static SyscallResult Pause(ISyscallContext c)
    {
        var t = c.Task();
        try
        {
            t.WaitUntil(null, 0, static () => false);
        }
        catch (ErrnoException e) when (e.Errno == Errno.ERESTARTSYS)
        {
        }

        // A handler ends it with EINTR; a signal that runs no handler restarts it.
        return SyscallResult.Error(Errno.ERESTARTNOHAND);
    }

    [Syscall(130)]
    public static SyscallResult RtSigsuspend(ISyscallContext c)
    {
        var t = c.Task();
        if (c.Arguments.A1 != SigsetSize)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        ulong mask = t.Mm.ReadValue<ulong>(c.Arguments.A0);
        t.BeginTemporarySignalMask(mask);
        try
        {
            t.WaitUntil(null, 0, static () => false);
        }
        catch (ErrnoException e) when (e.Errno == Errno.ERESTARTSYS)
        {
        }

        // The mask stays until the signal is delivered: the handler's frame saves the old one, so
        // it comes back with sigreturn.
        t.EndTemporarySignalMask(interrupted: true);
        return SyscallResult.Error(Errno.ERESTARTNOHAND);
    }

    [Syscall(128)]
    public static SyscallResult RtSigtimedwait(ISyscallContext c)
    {
        var t = c.Task();
        var a = c.Arguments;
        if (a.A3 != SigsetSize)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        ulong wanted = t.Mm.ReadValue<ulong>(a.A0) & ~Signals.Unblockable;
        long timeout = -1;
        if (a.A2 != 0)
        {
            var ts = t.Mm.ReadValue<LinuxTimespec>(a.A2);
            if (ts.Seconds < 0 || (ulong)ts.Nanoseconds >= 1_000_000_000)
            {
                return SyscallResult.Error(Errno.EINVAL);
            }

            timeout = ts.Seconds >= long.MaxValue / 1_000_000_000 ? long.MaxValue : ts.Seconds * 1_000_000_000 + ts.Nanoseconds;
        }

        // Signals in the set are taken whether blocked or not, and no handler runs for them.
        ulong others = ~wanted;
        if (!t.DequeueSignal(others, out var info))
        {
            if (timeout == 0)
            {
                return SyscallResult.Error(Errno.EAGAIN);
            }

            // While waiting, the wanted signals are unblocked so that their arrival wakes us; any
            // other unblocked signal ends the wait with EINTR (it is never restarted).
            ulong saved = t.SignalMask;
            t.SignalMask = saved & ~wanted;
            bool interrupted = false;
            try
            {
                long deadline = timeout < 0 ? -1 : Kernel.Kernel.Now + Math.Min(timeout, long.MaxValue / 2);
                t.WaitUntil(null, 0, static () => false, deadline);
            }
            catch (ErrnoException e) when (e.Errno == Errno.ERESTARTSYS)
            {
                interrupted = true;
            }
            finally
            {
                t.SignalMask = saved;
            }

            if (!t.DequeueSignal(others, out info))
            {
                return SyscallResult.Error(interrupted ? Errno.EINTR : Errno.EAGAIN);
            }
        }

        if (a.A1 != 0)
        {
            t.Mm.WriteValue(a.A1, info);
        }

        return SyscallResult.Ok(info.Signo);
    }

    [Syscall(129)]
    public static SyscallResult RtSigqueueinfo(ISyscallContext c)
    {
        var t = c.Task();
        int pid = (int)c.Arguments.A0;
        int signal = (int)c.Arguments.A1;
        var info = SignalQueueing.ReadUserSiginfo(t, c.Arguments.A2, signal);

        // Not even root may pretend to be the kernel or kill/tgkill, except to itself.
        if ((info.Code >= 0 || info.Code == Signals.SI_TKILL) && pid != t.Tid)
        {
            return SyscallResult.Error(Errno.EPERM);
        }

        var target = pid > 0 ? t.Kernel.Pids.FindTask(pid) : null;
        if (target is null)
        {
            return SyscallResult.Error(Errno.ESRCH);
        }

        return SendQueued(t, target, info, processDirected: true);
    }

    [Syscall(297)]
    public static SyscallResult RtTgsigqueueinfo(ISyscallContext c)
    {
        var t = c.Task();
        var a = c.Arguments;
        int tgid = (int)a.A0, tid = (int)a.A1, signal = (int)a.A2;
        var info = SignalQueueing.ReadUserSiginfo(t, a.A3, signal);
        if (tid <= 0 || tgid <= 0)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        if ((info.Code >= 0 || info.Code == Signals.SI_TKILL) && tid != t.Tid)
        {
            return SyscallResult.Error(Errno.EPERM);
        }

        var target = t.Kernel.Pids.FindTask(tid);
        if (target is null || target.Group.Pid != tgid)
        {
            return SyscallResult.Error(Errno.ESRCH);
        }

        return SendQueued(t, target, info, processDirected: false);
    }

    /// <summary>Permission, the null signal, RLIMIT_SIGPENDING, then delivery to the process or the thread.</summary>
    internal static SyscallResult SendQueued(KernelTask sender, KernelTask target, in SignalInfo info, bool processDirected)
    {
        var denied = SignalQueueing.CheckPermission(sender, target, info);
        if (denied != Errno.None)
        {
            return SyscallResult.Error(denied);
        }

        if (info.Signo == 0)
        {
            return SyscallResult.Zero;
        }

        if (info.Signo >= Signals.SIGRTMIN && info.Code != Signals.SI_USER && SignalQueueing.OverSigpendingLimit(target))
        {
            return SyscallResult.Error(Errno.EAGAIN);
        }

        if (processDirected)
        {
            SignalSyscalls.SendToGroup(target.Group, info);
        }
        else
        {
            target.SendSignal(info);
        }

        return SyscallResult.Zero;
    }
}
