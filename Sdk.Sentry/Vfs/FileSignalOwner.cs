using AppKernel.Sentry.Kernel;
using AppKernel.Sentry.Syscalls;

namespace AppKernel.Sentry.Vfs;

/// <summary>Who an owner names (Linux's pid_type of f_owner): a thread, a process or a process group.</summary>
internal enum SignalOwnerKind
{
    /// <summary>F_OWNER_TID: one thread (PIDTYPE_PID).</summary>
    Thread = 0,

    /// <summary>F_OWNER_PID: a process (PIDTYPE_TGID), what F_SETOWN with a positive id sets.</summary>
    Process = 1,

    /// <summary>F_OWNER_PGRP: every process of a group (PIDTYPE_PGID), F_SETOWN with a negative id.</summary>
    ProcessGroup = 2,
}

/// <summary>
/// A file description's owner (Linux's struct fown_struct), set by F_SETOWN, F_SETOWN_EX and the
/// socket ioctls FIOSETOWN/SIOCSPGRP: whom SIGURG goes to when urgent data arrives on a socket.
/// The setter's uid and euid are kept for the permission check sigio_perm makes at delivery.
/// </summary>
internal sealed record FileSignalOwner(SignalOwnerKind Kind, int Id, int Uid, int EffectiveUid)
{
    /// <summary>
    /// Makes the owner F_SETOWN (positive id: a process, negative: a process group) or F_SETOWN_EX
    /// names, with the caller's ids; null for id 0 (no owner). ESRCH when no task, process group
    /// or session has that id (find_vpid).
    /// </summary>
    public static FileSignalOwner? Make(KernelTask caller, SignalOwnerKind kind, int id)
    {
        if (id == 0)
        {
            return null;
        }

        var pids = caller.Kernel.Pids;
        if (id < 0 || (pids.FindTask(id) is null && !pids.Groups().Any(g => g.ProcessGroup == id || g.Session == id)))
        {
            throw ErrnoException.Of(Errno.ESRCH);
        }

        return new FileSignalOwner(kind, id, caller.Credentials.RealUid, caller.Credentials.EffectiveUid);
    }

    /// <summary>F_SETOWN's argument: a positive pid names a process, a negative one a process group.</summary>
    public static FileSignalOwner? FromSetOwn(KernelTask caller, int who) =>
        who == int.MinValue ? throw ErrnoException.Of(Errno.EINVAL)
        : who < 0 ? Make(caller, SignalOwnerKind.ProcessGroup, -who)
        : Make(caller, SignalOwnerKind.Process, who);

    /// <summary>F_GETOWN's answer: the id (negated for a process group), 0 once no task has it.</summary>
    public static int GetOwn(KernelTask caller, FileSignalOwner? owner) => owner is null || !owner.Alive(caller.Kernel) ? 0
        : owner.Kind == SignalOwnerKind.ProcessGroup ? -owner.Id : owner.Id;

    /// <summary>Whether a task still has the owner's id (pid_task), as F_GETOWN and F_GETOWN_EX check.</summary>
    public bool Alive(Kernel.Kernel kernel) => Kind switch
    {
        SignalOwnerKind.ProcessGroup => kernel.Pids.Groups().Any(g => g.ProcessGroup == Id && g.Tasks.Length > 0),
        _ => kernel.Pids.FindTask(Id) is not null,
    };

    /// <summary>
    /// Sends SIGURG (si_code SI_KERNEL) to the owner, as send_sigurg: to the thread, to the process
    /// (process-directed), or to each process of the group, where the setter's ids may signal it.
    /// </summary>
    public void SendUrgent(Kernel.Kernel kernel)
    {
        var info = SignalInfo.Kernel(Abi.Signals.SIGURG);
        switch (Kind)
        {
            case SignalOwnerKind.Thread:
                if (kernel.Pids.FindTask(Id) is { } thread && MaySignal(thread))
                {
                    thread.SendSignal(info);
                }

                break;
            case SignalOwnerKind.Process:
                if (kernel.Pids.FindTask(Id) is { } task && MaySignal(task))
                {
                    SignalSyscalls.SendToGroup(task.Group, info);
                }

                break;
            default:
                foreach (var group in kernel.Pids.Groups().Where(g => g.ProcessGroup == Id))
                {
                    if ((group.Leader ?? group.Tasks.FirstOrDefault()) is { } member && MaySignal(member))
                    {
                        SignalSyscalls.SendToGroup(group, info);
                    }
                }

                break;
        }
    }

    /// <summary>sigio_perm: the setter was root, or one of its uid/euid is the target's uid or saved uid.</summary>
    private bool MaySignal(KernelTask target)
    {
        var c = target.Credentials;
        return EffectiveUid == 0 || EffectiveUid == c.SavedUid || EffectiveUid == c.RealUid || Uid == c.SavedUid || Uid == c.RealUid;
    }
}
