using AppKernel.Sentry.Abi;
using AppKernel.Sentry.Kernel;
using AppKernel.Syscalls;
using AppKernel.Vfs;

namespace AppKernel.Sentry.Syscalls;

/// <summary>wait4 and waitid: reaping zombies, reporting stopped and continued children.</summary>
internal static class WaitSyscalls
{
    private const int WNOHANG = 1, WUNTRACED = 2, WSTOPPED = 2, WEXITED = 4, WCONTINUED = 8, WNOWAIT = 0x01000000,
        __WNOTHREAD = 0x20000000, __WALL = 0x40000000, __WCLONE = unchecked((int)0x80000000);

    private const int P_ALL = 0, P_PID = 1, P_PGID = 2, P_PIDFD = 3;

    /// <summary>Which children a wait is about.</summary>
    private readonly record struct Selector(int Kind, int Id);

    /// <summary>What a wait found: the child, and the CLD_* code and status to report.</summary>
    private readonly record struct Found(ThreadGroup Child, int Code, int Status, int WaitStatus);

    [Syscall(61)]
    public static SyscallResult Wait4(ISyscallContext c)
    {
        var t = c.Task();
        var a = c.Arguments;
        int pid = (int)a.A0;
        int options = (int)a.A2;
        if ((options & ~(WNOHANG | WUNTRACED | WCONTINUED | __WNOTHREAD | __WALL | __WCLONE)) != 0)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        if (pid == int.MinValue)
        {
            return SyscallResult.Error(Errno.ESRCH);
        }

        var selector = pid switch
        {
            > 0 => new Selector(P_PID, pid),
            0 => new Selector(P_PGID, t.Group.ProcessGroup),
            -1 => new Selector(P_ALL, 0),
            _ => new Selector(P_PGID, -pid),
        };
        var found = Wait(t, selector, options | WEXITED);
        if (found is not { } f)
        {
            return SyscallResult.Zero;
        }

        if (a.A1 != 0)
        {
            t.Mm.WriteValue(a.A1, f.WaitStatus);
        }

        if (a.A3 != 0)
        {
            t.Mm.Write(a.A3, new byte[144]);
        }

        return SyscallResult.Ok(f.Child.Pid);
    }

    [Syscall(247, SupportLevel.Partial, Note = "P_PIDFD gives EINVAL until pidfds exist; rusage is zeroed")]
    public static SyscallResult Waitid(ISyscallContext c)
    {
        var t = c.Task();
        var a = c.Arguments;
        int kind = (int)a.A0;
        int id = (int)a.A1;
        int options = (int)a.A3;
        if ((options & ~(WNOHANG | WSTOPPED | WEXITED | WCONTINUED | WNOWAIT | __WNOTHREAD | __WALL | __WCLONE)) != 0 ||
            (options & (WEXITED | WSTOPPED | WCONTINUED)) == 0)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        Selector selector;
        switch (kind)
        {
            case P_ALL:
                selector = new Selector(P_ALL, 0);
                break;
            case P_PID:
                if (id <= 0)
                {
                    return SyscallResult.Error(Errno.EINVAL);
                }

                selector = new Selector(P_PID, id);
                break;
            case P_PGID:
                if (id < 0)
                {
                    return SyscallResult.Error(Errno.EINVAL);
                }

                selector = new Selector(P_PGID, id == 0 ? t.Group.ProcessGroup : id);
                break;
            default:
                return SyscallResult.Error(Errno.EINVAL);
        }

        var found = Wait(t, selector, options);
        var info = new SignalInfo();
        if (found is { } f)
        {
            info.Signo = Signals.SIGCHLD;
            info.Code = f.Code;
            info.Pid = f.Child.Pid;
            info.Uid = f.Child.Leader?.Credentials.RealUid ?? 0;
            info.Status = f.Status;
        }

        if (a.A2 != 0)
        {
            t.Mm.WriteValue(a.A2, info);
        }

        if (a.A4 != 0)
        {
            t.Mm.Write(a.A4, new byte[144]);
        }

        return SyscallResult.Zero;
    }

    /// <summary>The heart of wait: find a reportable child, reap it unless WNOWAIT, or block; ECHILD when there is nothing to wait for.</summary>
    private static Found? Wait(KernelTask t, in Selector selector, int options)
    {
        var kernel = t.Kernel;
        var group = t.Group;
        while (true)
        {
            int generation = Volatile.Read(ref group.ChildEventGeneration);
            lock (kernel.Pids.Gate)
            {
                bool any = false;
                foreach (var child in group.Children)
                {
                    if (!Eligible(child, selector, options))
                    {
                        continue;
                    }

                    any = true;
                    if ((options & WEXITED) != 0 && child.State == ProcessState.Zombie)
                    {
                        var status = child.ExitStatus!.Value;
                        var found = new Found(
                            child,
                            status.ExitCode is not null ? Signals.CLD_EXITED : status.CoreDumped ? Signals.CLD_DUMPED : Signals.CLD_KILLED,
                            status.ExitCode ?? status.Signal ?? 0,
                            ThreadGroup.WaitStatus(status));
                        if ((options & WNOWAIT) == 0)
                        {
                            group.Children.Remove(child);
                            kernel.Reap(child);
                        }

                        return found;
                    }

                    if ((options & WSTOPPED) != 0 && child.Stopped && !child.StopReported && child.State == ProcessState.Running)
                    {
                        if ((options & WNOWAIT) == 0)
                        {
                            child.StopReported = true;
                        }

                        return new Found(child, Signals.CLD_STOPPED, child.StopSignal, 0x7f | (child.StopSignal << 8));
                    }

                    if ((options & WCONTINUED) != 0 && child.ContinuedPending && child.State == ProcessState.Running)
                    {
                        if ((options & WNOWAIT) == 0)
                        {
                            child.ContinuedPending = false;
                        }

                        return new Found(child, Signals.CLD_CONTINUED, Signals.SIGCONT, 0xffff);
                    }
                }

                if (!any)
                {
                    throw ErrnoException.Of(Errno.ECHILD);
                }
            }

            if ((options & WNOHANG) != 0)
            {
                return null;
            }

            t.WaitUntil(group.ChildEvents, PollEvents.All, () => Volatile.Read(ref group.ChildEventGeneration) != generation);
        }
    }

    private static bool Eligible(ThreadGroup child, in Selector selector, int options)
    {
        bool matches = selector.Kind switch
        {
            P_PID => child.Pid == selector.Id,
            P_PGID => child.ProcessGroup == selector.Id,
            _ => true,
        };
        if (!matches || child.State == ProcessState.Reaped)
        {
            return false;
        }

        // A "clone" child reports to its parent with a signal other than SIGCHLD.
        if ((options & __WALL) != 0)
        {
            return true;
        }

        bool cloneChild = child.ExitSignal != Signals.SIGCHLD;
        return ((options & __WCLONE) != 0) == cloneChild;
    }
}
