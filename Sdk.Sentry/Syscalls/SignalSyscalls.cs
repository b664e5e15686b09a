using AppKernel.Sentry.Abi;
using AppKernel.Sentry.Kernel;
using AppKernel.Syscalls;

namespace AppKernel.Sentry.Syscalls;

/// <summary>Signal dispositions, masks, the alternate stack, sigreturn, and sending signals within the sandbox.</summary>
internal static class SignalSyscalls
{
    private const ulong SigsetSize = 8;

    [Syscall(13)]
    public static SyscallResult RtSigaction(ISyscallContext c)
    {
        var t = c.Task();
        var a = c.Arguments;
        int signal = (int)a.A0;
        if (a.A3 != SigsetSize)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        // Linux copies the new action in before it looks at the signal number (EFAULT first).
        LinuxSigaction? next = a.A1 != 0 ? t.Mm.ReadValue<LinuxSigaction>(a.A1) : null;
        if (signal < 1 || signal > Signals.NSIG || (next is not null && (signal == Signals.SIGKILL || signal == Signals.SIGSTOP)))
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        var handlers = t.Group.Handlers;
        bool wasIgnored;
        lock (handlers.Gate)
        {
            var old = handlers.Get(signal);
            wasIgnored = old.Handler == Signals.SIG_IGN;
            if (a.A2 != 0)
            {
                t.Mm.WriteValue(a.A2, old);
            }

            if (next is { } action)
            {
                action.Mask &= ~Signals.Unblockable;
                handlers.Set(signal, action);
                if (t.Group.Ignores(signal))
                {
                    // Pending instances of a now-ignored signal are discarded.
                    t.Group.SharedPending.Discard(Signals.Bit(signal));
                    foreach (var task in t.Group.Tasks)
                    {
                        task.Pending.Discard(Signals.Bit(signal));
                    }
                }
            }
        }

        if (next is not null)
        {
            // POSIX timers whose signal became ignored park; parked ones come back when SIG_IGN goes.
            t.Group.Timers.SignalActionChanged(signal, wasIgnored);
        }

        return SyscallResult.Zero;
    }

    [Syscall(14)]
    public static SyscallResult RtSigprocmask(ISyscallContext c)
    {
        var t = c.Task();
        var a = c.Arguments;
        if (a.A3 != SigsetSize)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        ulong old = t.SignalMask;
        if (a.A1 != 0)
        {
            ulong set = t.Mm.ReadValue<ulong>(a.A1);
            ulong mask = (int)a.A0 switch
            {
                Signals.SIG_BLOCK => old | set,
                Signals.SIG_UNBLOCK => old & ~set,
                Signals.SIG_SETMASK => set,
                _ => throw ErrnoException.Of(Errno.EINVAL),
            };
            t.SignalMask = mask & ~Signals.Unblockable;
        }

        if (a.A2 != 0)
        {
            t.Mm.WriteValue(a.A2, old);
        }

        return SyscallResult.Zero;
    }

    [Syscall(15)]
    public static SyscallResult RtSigreturn(ISyscallContext c) => c.Task().SignalReturn();

    [Syscall(127)]
    public static SyscallResult RtSigpending(ISyscallContext c)
    {
        var t = c.Task();
        if (c.Arguments.A1 > SigsetSize)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        ulong pending = (t.Pending.Pending | t.Group.SharedPending.Pending) & t.SignalMask;
        Span<byte> bytes = stackalloc byte[8];
        BitConverter.TryWriteBytes(bytes, pending);
        t.Mm.Write(c.Arguments.A0, bytes[..(int)c.Arguments.A1]);
        return SyscallResult.Zero;
    }

    [Syscall(131)]
    public static SyscallResult Sigaltstack(ISyscallContext c)
    {
        var t = c.Task();
        var a = c.Arguments;
        bool onStack = t.IsOnAltStack(t.Cpu.Registers.Rsp);
        LinuxStack? next = a.A0 != 0 ? t.Mm.ReadValue<LinuxStack>(a.A0) : null;
        if (a.A1 != 0)
        {
            var old = t.AltStack;
            old.Flags = onStack ? Signals.SS_ONSTACK : (old.Flags & Signals.SS_DISABLE) != 0 ? Signals.SS_DISABLE : old.Flags;
            t.Mm.WriteValue(a.A1, old);
        }

        if (next is { } stack)
        {
            if (onStack)
            {
                return SyscallResult.Error(Errno.EPERM);
            }

            int mode = stack.Flags & ~unchecked((int)Signals.SS_AUTODISARM);
            if (mode is not (0 or Signals.SS_DISABLE or Signals.SS_ONSTACK))
            {
                return SyscallResult.Error(Errno.EINVAL);
            }

            if (mode == Signals.SS_DISABLE)
            {
                t.AltStack = new LinuxStack { Flags = Signals.SS_DISABLE };
            }
            else
            {
                if (stack.Size < Signals.MINSIGSTKSZ)
                {
                    return SyscallResult.Error(Errno.ENOMEM);
                }

                t.AltStack = stack with { Flags = stack.Flags & unchecked((int)Signals.SS_AUTODISARM) };
            }
        }

        return SyscallResult.Zero;
    }

    [Syscall(62)]
    public static SyscallResult Kill(ISyscallContext c)
    {
        var t = c.Task();
        int pid = (int)c.Arguments.A0;
        int signal = (int)c.Arguments.A1;
        if (signal < 0 || signal > Signals.NSIG)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        var info = SignalInfo.User(signal, t.Pid, t.Credentials.RealUid);
        if (pid > 0)
        {
            var group = t.Kernel.Pids.FindGroup(pid);
            if (group is null || group.Exiting && group.Tasks.Length == 0)
            {
                return SyscallResult.Error(Errno.ESRCH);
            }

            return Deliver(t, group, info);
        }

        // 0: the caller's process group; -1: everyone but init and the caller; -N: process group N.
        var targets = t.Kernel.Pids.Groups().Where(g => pid switch
        {
            0 => g.ProcessGroup == t.Group.ProcessGroup,
            -1 => g.Pid != 1 && g != t.Group,
            _ => g.ProcessGroup == -pid,
        }).ToArray();
        if (targets.Length == 0)
        {
            return SyscallResult.Error(Errno.ESRCH);
        }

        var result = SyscallResult.Error(Errno.EPERM);
        foreach (var group in targets)
        {
            if (Deliver(t, group, info) == SyscallResult.Zero)
            {
                result = SyscallResult.Zero;
            }
        }

        return result;
    }

    /// <summary>Permission (same sandbox: root, or matching uids) and process-directed delivery.</summary>
    internal static SyscallResult Deliver(KernelTask sender, ThreadGroup group, SignalInfo info)
    {
        var target = group.Leader ?? group.Tasks.FirstOrDefault();
        if (target is null)
        {
            return SyscallResult.Error(Errno.ESRCH);
        }

        var credentials = sender.Credentials;
        if (!credentials.IsRoot && credentials.RealUid != target.Credentials.RealUid && credentials.EffectiveUid != target.Credentials.RealUid &&
            credentials.RealUid != target.Credentials.SavedUid && credentials.EffectiveUid != target.Credentials.SavedUid &&
            !(info.Signo == Signals.SIGCONT && group.Session == sender.Group.Session))
        {
            return SyscallResult.Error(Errno.EPERM);
        }

        if (info.Signo == 0)
        {
            return SyscallResult.Zero;
        }

        // Init only gets the signals it installed a handler for (SIGKILL and SIGSTOP included: never),
        // unless it blocks them: a blocked signal is queued, since the handler may change meanwhile.
        ulong bit = Signals.Bit(info.Signo);
        if (group.Pid == 1 && group.Handlers.Get(info.Signo).Handler is Signals.SIG_DFL or Signals.SIG_IGN &&
            !group.Tasks.Any(task => (task.SignalMask & bit) != 0))
        {
            return SyscallResult.Zero;
        }

        SendToGroup(group, info);
        return SyscallResult.Zero;
    }

    /// <summary>A process-directed signal: queued for the process, one task that does not block it is woken.</summary>
    internal static void SendToGroup(ThreadGroup group, in SignalInfo info)
    {
        if (info.Signo == Signals.SIGKILL)
        {
            group.BeginExit(ExitStatus.Killed(Signals.SIGKILL));
            return;
        }

        KernelTask.PrepareJobControl(group, info.Signo);
        // A signal blocked by the process's main thread is queued even when ignored: the
        // disposition may change before it is unblocked.
        if (group.Ignores(info.Signo) && ((group.Leader?.SignalMask ?? 0) & Signals.Bit(info.Signo)) == 0)
        {
            return;
        }

        group.SharedPending.Enqueue(info);
        var tasks = group.Tasks;
        ulong bit = Signals.Bit(info.Signo);
        var chosen = tasks.FirstOrDefault(task => (task.SignalMask & bit) == 0);
        foreach (var task in chosen is null ? tasks : [chosen])
        {
            task.Wake();
        }
    }

    [Syscall(234)]
    public static SyscallResult Tgkill(ISyscallContext c)
    {
        int tgid = (int)c.Arguments.A0, tid = (int)c.Arguments.A1, signal = (int)c.Arguments.A2;
        if (tgid <= 0 || tid <= 0)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        return ThreadKill(c.Task(), tid, signal, tgid);
    }

    [Syscall(200)]
    public static SyscallResult Tkill(ISyscallContext c)
    {
        int tid = (int)c.Arguments.A0, signal = (int)c.Arguments.A1;
        if (tid <= 0)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        return ThreadKill(c.Task(), tid, signal, null);
    }

    private static SyscallResult ThreadKill(KernelTask sender, int tid, int signal, int? tgid)
    {
        if (signal < 0 || signal > Signals.NSIG)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        var target = sender.Kernel.Pids.FindTask(tid);
        if (target is null || (tgid is { } g && target.Group.Pid != g))
        {
            return SyscallResult.Error(Errno.ESRCH);
        }

        if (signal == 0)
        {
            return SyscallResult.Zero;
        }

        target.SendSignal(SignalInfo.User(signal, sender.Pid, sender.Credentials.RealUid, Signals.SI_TKILL));
        return SyscallResult.Zero;
    }
}
