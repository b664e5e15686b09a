using AppKernel.Sentry.Abi;
using AppKernel.Sentry.Kernel;
using AppKernel.Sentry.Vfs;
using AppKernel.Syscalls;
using AppKernel.Vfs;

namespace AppKernel.Sentry.Syscalls;

/// <summary>Process file descriptors: pidfd_open, pidfd_getfd and pidfd_send_signal.</summary>
internal static class PidfdSyscalls
{
    private const int PIDFD_NONBLOCK = (int)OpenFlags.NonBlocking, PIDFD_THREAD = (int)OpenFlags.Exclusive;
    private const uint PIDFD_SIGNAL_THREAD = 1, PIDFD_SIGNAL_THREAD_GROUP = 2, PIDFD_SIGNAL_PROCESS_GROUP = 4;
    private const int PIDFD_SELF_THREAD = -10000, PIDFD_SELF_THREAD_GROUP = -10001;

    /// <summary>What /proc/PID/fd shows for a pidfd.</summary>
    public const string Name = "anon_inode:[pidfd]";

    [Syscall(434, SupportLevel.Partial, Note = "fstat shows an anonymous file; a PIDFD_THREAD pidfd's pollers wake when the process ends")]
    public static SyscallResult PidfdOpen(ISyscallContext c)
    {
        var t = c.Task();
        int pid = (int)c.Arguments.A0;
        uint flags = (uint)c.Arguments.A1;
        if ((flags & ~(uint)(PIDFD_NONBLOCK | PIDFD_THREAD)) != 0 || pid <= 0)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        var pids = t.Kernel.Pids;
        var task = pids.FindTask(pid);
        var group = pids.FindGroup(pid);
        PidFile file;
        if ((flags & PIDFD_THREAD) != 0)
        {
            if (task is null)
            {
                return SyscallResult.Error(Errno.ESRCH);
            }

            file = new PidFile(task.Group, task);
        }
        else if (group is not null)
        {
            file = new PidFile(group, null);
        }
        else
        {
            // A thread that does not lead a process: Linux answers ENOENT as a hint.
            return SyscallResult.Error(task is null ? Errno.ESRCH : Errno.ENOENT);
        }

        var status = OpenFlags.ReadWrite | ((flags & PIDFD_NONBLOCK) != 0 ? OpenFlags.NonBlocking : 0);
        var description = new FileDescription(file, null, status, Name);
        try
        {
            return SyscallResult.Ok(t.Fds.Install(description, closeOnExec: true, t.Group.Limits.OpenFilesLimit));
        }
        catch
        {
            description.Release();
            throw;
        }
    }

    [Syscall(438)]
    public static SyscallResult PidfdGetfd(ISyscallContext c)
    {
        var t = c.Task();
        int pidfd = (int)c.Arguments.A0, targetFd = (int)c.Arguments.A1;
        if (c.Arguments.A2 != 0)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        if (t.Fds.Get(pidfd).Operations is not PidFile file)
        {
            return SyscallResult.Error(Errno.EBADF);
        }

        var group = file.Group;
        var target = group.Leader;
        if (group.Exiting || target is null)
        {
            return SyscallResult.Error(Errno.ESRCH);
        }

        if (!PtraceAccess.MayAttach(t, group))
        {
            return SyscallResult.Error(Errno.EPERM);
        }

        var description = target.Fds.GetReferenced(targetFd);
        try
        {
            return SyscallResult.Ok(t.Fds.Install(description, closeOnExec: true, t.Group.Limits.OpenFilesLimit));
        }
        catch
        {
            description.Release();
            throw;
        }
    }

    [Syscall(424)]
    public static SyscallResult PidfdSendSignal(ISyscallContext c)
    {
        var t = c.Task();
        var a = c.Arguments;
        int pidfd = (int)a.A0;
        int signal = (int)a.A1;
        uint flags = (uint)a.A3;
        const uint scopes = PIDFD_SIGNAL_THREAD | PIDFD_SIGNAL_THREAD_GROUP | PIDFD_SIGNAL_PROCESS_GROUP;
        if ((flags & ~scopes) != 0 || System.Numerics.BitOperations.PopCount(flags) > 1)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        // The target: a thread (its task) or a process (its main task), and the default scope.
        KernelTask? target;
        bool gone;
        bool thread;
        switch (pidfd)
        {
            case PIDFD_SELF_THREAD:
                (target, gone, thread) = (t, false, true);
                break;
            case PIDFD_SELF_THREAD_GROUP:
                (target, gone, thread) = (t.Group.Leader ?? t, false, false);
                break;
            default:
                if (!t.Fds.TryGet(pidfd, out var description) || description.Operations is not PidFile file)
                {
                    return SyscallResult.Error(Errno.EBADF);
                }

                thread = file.Thread is not null;
                target = file.Thread ?? file.Group.Leader;
                gone = file.IsGone;
                break;
        }

        if (flags == PIDFD_SIGNAL_THREAD)
        {
            thread = true;
        }
        else if (flags == PIDFD_SIGNAL_THREAD_GROUP)
        {
            thread = false;
        }

        bool processGroup = flags == PIDFD_SIGNAL_PROCESS_GROUP;
        SignalInfo info;
        if (a.A2 != 0)
        {
            info = SignalQueueing.ReadUserSiginfo(t, a.A2, signal: null);
            if (info.Signo != signal)
            {
                return SyscallResult.Error(Errno.EINVAL);
            }

            // Arbitrary siginfo only to oneself (the calling thread, or its process through the main thread).
            if ((target != t || processGroup) && (info.Code >= 0 || info.Code == Signals.SI_TKILL))
            {
                return SyscallResult.Error(Errno.EPERM);
            }
        }
        else
        {
            info = SignalInfo.User(signal, t.Pid, t.Credentials.RealUid, thread && !processGroup ? Signals.SI_TKILL : Signals.SI_USER);
        }

        if (processGroup)
        {
            return SignalProcessGroup(t, target?.Tid ?? 0, info);
        }

        if (target is null || gone)
        {
            return SyscallResult.Error(Errno.ESRCH);
        }

        return SignalWaitSyscalls.SendQueued(t, target, info, processDirected: !thread);
    }

    /// <summary>PIDFD_SIGNAL_PROCESS_GROUP: every process of the group whose id is the pidfd's pid; ESRCH when there is none.</summary>
    private static SyscallResult SignalProcessGroup(KernelTask sender, int pgid, in SignalInfo info)
    {
        var result = SyscallResult.Error(Errno.ESRCH);
        foreach (var group in sender.Kernel.Pids.Groups())
        {
            if (group.ProcessGroup != pgid || (group.Leader ?? group.Tasks.FirstOrDefault()) is not { } member)
            {
                continue;
            }

            var sent = SignalWaitSyscalls.SendQueued(sender, member, info, processDirected: true);
            if (result != SyscallResult.Zero)
            {
                result = sent;
            }
        }

        return result;
    }
}
