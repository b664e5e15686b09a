namespace AppKernel.Sentry.Kernel;

/// <summary>
/// Linux's PTRACE_MODE_ATTACH_REALCREDS check, for the calls that reach into another process
/// (pidfd_getfd, process_vm_readv/writev, /proc/PID/mem): always within one's own process;
/// otherwise the caller's real ids must be all of the target's real, effective and saved ids and
/// the target dumpable, or the caller must hold CAP_SYS_PTRACE.
/// </summary>
internal static class PtraceAccess
{
    private const int CAP_SYS_PTRACE = 19;

    public static bool MayAttach(KernelTask caller, ThreadGroup target)
    {
        if (ReferenceEquals(caller.Group, target))
        {
            return true;
        }

        var theirs = (target.Leader ?? target.Tasks.FirstOrDefault())?.Credentials;
        if (theirs is null)
        {
            return false;
        }

        var mine = caller.Credentials;
        bool sameUser = mine.RealUid == theirs.RealUid && mine.RealUid == theirs.EffectiveUid && mine.RealUid == theirs.SavedUid &&
                        mine.RealGid == theirs.RealGid && mine.RealGid == theirs.EffectiveGid && mine.RealGid == theirs.SavedGid;
        return mine.HasCapability(CAP_SYS_PTRACE) || (sameUser && target.Dumpable);
    }
}
