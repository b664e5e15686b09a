using AppKernel.Sentry.Abi;
using AppKernel.Sentry.Kernel;
using AppKernel.Sentry.Kernel.Timers;
using AppKernel.Syscalls;
using AppKernel.Vfs;

namespace AppKernel.Sentry.Syscalls;

/// <summary>wait4 and waitid: reaping zombies, reporting stopped and continued children.</summary>
internal static class WaitSyscalls
{
    private const int WNOHANG = 1, WUNTRACED = 2, WSTOPPED = 2, WEXITED = 4, WCONTINUED = 8, WNOWAIT = 0x01000000,
        __WNOTHREAD = 0x20000000, __WALL = 0x40000000, __WCLONE = unchecked((int)0x80000000);

    private const int P_ALL = 0, P_PID = 1, P_PGID = 2, P_PIDFD = 3;

    /// <summary>Which children a wait is about: by pid, process group, every child, or (P_PIDFD) the process a pidfd names.</summary>
    private readonly record struct Selector(int Kind, int Id, ThreadGroup? Group = null);

    /// <summary>What a wait found: the child, and the CLD_* code and status to report.</summary>
    private readonly record struct Found(ThreadGroup Child, int Code, int Status, int WaitStatus)
    {
        /// <summary>Whether the wait reaped the child.</summary>
        public bool Reaped { get; init; }

        /// <summary>The child's resource usage with its own reaped children's (Linux's RUSAGE_BOTH).</summary>
        public LinuxRusage Usage { get; init; }
    }

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
            t.Mm.WriteValue(a.A3, f.Usage);
        }

        return SyscallResult.Ok(f.Child.Pid);
    }

    [Syscall(247, SupportLevel.Partial, Note = "rusage has CPU times and ru_maxrss only, as getrusage")]
    public static SyscallResult Waitid(ISyscallContext c)
    {
        SyscallResult result;
        try
        {
            result = WaitidCore(c);
        }
        catch (ErrnoException e)
        {
            result = SyscallResult.Error(e.Errno);
        }

        // Linux fills the siginfo's leading fields even when the wait failed (with zeroes), so a
        // bad infop turns any outcome, EINVAL and ECHILD included, into EFAULT.
        ulong infop = c.Arguments.A2;
        if (result.IsError && infop != 0)
        {
            c.Task().Mm.Write(infop, stackalloc byte[WaitidFilledBytes]);
        }

        return result;
    }

    /// <summary>si_signo, si_errno, si_code, si_pid, si_uid and si_status: what waitid writes.</summary>
    private const int WaitidFilledBytes = 28;

    private static SyscallResult WaitidCore(ISyscallContext c)
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
        bool nonBlockingPidfd = false;
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
            case P_PIDFD:
                if (id < 0)
                {
                    return SyscallResult.Error(Errno.EINVAL);
                }

                if (!t.Fds.TryGet(id, out var description) || description.Operations is not PidFile pidFile)
                {
                    return SyscallResult.Error(Errno.EBADF);
                }

                // A thread's pidfd names no child process unless the thread leads one.
                var named = pidFile.Thread is { } thread && thread != pidFile.Group.Leader ? null : pidFile.Group;
                selector = new Selector(P_PIDFD, 0, named);
                nonBlockingPidfd = (description.Flags & OpenFlags.NonBlocking) != 0;
                break;
            default:
                return SyscallResult.Error(Errno.EINVAL);
        }

        // A PIDFD_NONBLOCK pidfd makes the wait not block: EAGAIN when the caller did not ask for WNOHANG.
        var found = Wait(t, selector, nonBlockingPidfd ? options | WNOHANG : options);
        if (found is null && nonBlockingPidfd && (options & WNOHANG) == 0)
        {
            return SyscallResult.Error(Errno.EAGAIN);
        }

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
            t.Mm.WriteValue(a.A4, found?.Usage ?? default);
        }

        return SyscallResult.Zero;
    }

    /// <summary>
    /// Waits as <see cref="FindOrBlock"/>, then takes the child's usage; a reaped child's CPU time joins
    /// the waiter's RUSAGE_CHILDREN (outside the pid table's lock: the clocks take their own).
    /// </summary>
    private static Found? Wait(KernelTask t, in Selector selector, int options)
    {
        if (FindOrBlock(t, selector, options) is not { } found)
        {
            return null;
        }

        found = found with { Usage = UsageOf(found.Child) };
        if (found.Reaped)
        {
            t.Group.Timers.ChildReaped(found.Child.Timers);
        }

        return found;
    }

    /// <summary>The heart of wait: find a reportable child, reap it unless WNOWAIT, or block; ECHILD when there is nothing to wait for.</summary>
    private static Found? FindOrBlock(KernelTask t, in Selector selector, int options)
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
                            found = found with { Reaped = true };
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

    /// <summary>What wait reports as a child's rusage: its CPU time and its reaped children's, the larger ru_maxrss.</summary>
    private static LinuxRusage UsageOf(ThreadGroup child)
    {
        var timers = child.Timers;
        var times = timers.CpuTime + timers.ChildrenCpuTime;
        return new LinuxRusage
        {
            UserTime = TimerSyscalls.ToTimeval(times.User),
            SystemTime = TimerSyscalls.ToTimeval(times.System),
            MaxRss = (long)(Math.Max(timers.MaxResidentBytes, timers.ChildrenMaxResidentBytes) / 1024),
        };
    }

    private static bool Eligible(ThreadGroup child, in Selector selector, int options)
    {
        bool matches = selector.Kind switch
        {
            P_PID => child.Pid == selector.Id,
            P_PGID => child.ProcessGroup == selector.Id,
            P_PIDFD => child == selector.Group,
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
