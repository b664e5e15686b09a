using System.Runtime.InteropServices;
using AppKernel.Sentry.Abi;
using AppKernel.Sentry.Kernel;
using AppKernel.Syscalls;
using static AppKernel.Sentry.Kernel.SchedulingAttributes;

namespace AppKernel.Sentry.Syscalls;

/// <summary>
/// Scheduling: nice values (getpriority/setpriority), policies and priorities (sched_*), I/O
/// priorities (ioprio_*), CPU affinity, yield and getcpu. Host threads do the running; the values are kept per thread with
/// Linux's checks and errors.
/// </summary>
internal static class SchedulingSyscalls
{
    private const int PRIO_PROCESS = 0, PRIO_PGRP = 1, PRIO_USER = 2;
    private const int CAP_SYS_NICE = 23;
    private const int SCHED_RESET_ON_FORK = 0x40000000;
    private const ulong SCHED_FLAG_RESET_ON_FORK = 0x01, SCHED_FLAG_KEEP_POLICY = 0x08, SCHED_FLAG_KEEP_PARAMS = 0x10,
        SCHED_FLAG_ALL = 0x7f;
    private const int SchedAttrSize0 = 48, SchedAttrSize1 = 56, PageSize = 4096;

    [Syscall(140)]
    public static SyscallResult Getpriority(ISyscallContext c)
    {
        var t = c.Task();
        int which = (int)c.Arguments.A0, who = (int)c.Arguments.A1;
        if (which is < PRIO_PROCESS or > PRIO_USER)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        // The raw syscall answers 20 - nice (1..40) for the most favoured match, so no answer is negative.
        int best = -1;
        foreach (var task in Matching(t, which, who))
        {
            best = Math.Max(best, 20 - task.Scheduling.Nice);
        }

        return best < 0 ? SyscallResult.Error(Errno.ESRCH) : SyscallResult.Ok(best);
    }

    [Syscall(141)]
    public static SyscallResult Setpriority(ISyscallContext c)
    {
        var t = c.Task();
        int which = (int)c.Arguments.A0, who = (int)c.Arguments.A1;
        if (which is < PRIO_PROCESS or > PRIO_USER)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        int nice = Math.Clamp((int)c.Arguments.A2, -20, 19);
        var error = Errno.ESRCH;
        foreach (var task in Matching(t, which, who))
        {
            if (!MayChange(t, task))
            {
                error = Errno.EPERM;
                continue;
            }

            if (nice < task.Scheduling.Nice && !MayLowerNice(t, nice))
            {
                error = Errno.EACCES;
                continue;
            }

            task.Scheduling = task.Scheduling with { Nice = nice };
            if (error == Errno.ESRCH)
            {
                error = Errno.None;
            }
        }

        return error == Errno.None ? SyscallResult.Zero : SyscallResult.Error(error);
    }

    [Syscall(144)]
    public static SyscallResult SchedSetscheduler(ISyscallContext c)
    {
        var t = c.Task();
        int pid = (int)c.Arguments.A0, policy = (int)c.Arguments.A1;
        if (pid < 0 || c.Arguments.A2 == 0 || policy < 0)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        int priority = t.Mm.ReadValue<int>(c.Arguments.A2);
        bool resetOnFork = (policy & SCHED_RESET_ON_FORK) != 0;
        policy &= ~SCHED_RESET_ON_FORK;
        if (policy == SCHED_DEADLINE)
        {
            // SCHED_DEADLINE takes its parameters only through sched_setattr.
            return SyscallResult.Error(Errno.EINVAL);
        }

        return Apply(t, pid, new SchedulingRequest(policy, priority, null, resetOnFork));
    }

    [Syscall(142)]
    public static SyscallResult SchedSetparam(ISyscallContext c)
    {
        var t = c.Task();
        int pid = (int)c.Arguments.A0;
        if (pid < 0 || c.Arguments.A1 == 0)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        int priority = t.Mm.ReadValue<int>(c.Arguments.A1);
        var target = Find(t, pid);
        return target is null ? SyscallResult.Error(Errno.ESRCH)
            : Apply(t, pid, new SchedulingRequest(target.Scheduling.Policy, priority, null, target.Scheduling.ResetOnFork));
    }

    [Syscall(145)]
    public static SyscallResult SchedGetscheduler(ISyscallContext c)
    {
        int pid = (int)c.Arguments.A0;
        if (pid < 0)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        var target = Find(c.Task(), pid);
        return target is null ? SyscallResult.Error(Errno.ESRCH)
            : SyscallResult.Ok(target.Scheduling.Policy | (target.Scheduling.ResetOnFork ? SCHED_RESET_ON_FORK : 0));
    }

    [Syscall(143)]
    public static SyscallResult SchedGetparam(ISyscallContext c)
    {
        var t = c.Task();
        int pid = (int)c.Arguments.A0;
        if (pid < 0 || c.Arguments.A1 == 0)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        var target = Find(t, pid);
        if (target is null)
        {
            return SyscallResult.Error(Errno.ESRCH);
        }

        t.Mm.WriteValue(c.Arguments.A1, target.Scheduling.Priority);
        return SyscallResult.Zero;
    }

    [Syscall(146)]
    public static SyscallResult SchedGetPriorityMax(ISyscallContext c) => (int)c.Arguments.A0 switch
    {
        SCHED_FIFO or SCHED_RR => SyscallResult.Ok(99),
        SCHED_OTHER or SCHED_BATCH or SCHED_IDLE or SCHED_DEADLINE => SyscallResult.Zero,
        _ => SyscallResult.Error(Errno.EINVAL),
    };

    [Syscall(147)]
    public static SyscallResult SchedGetPriorityMin(ISyscallContext c) => (int)c.Arguments.A0 switch
    {
        SCHED_FIFO or SCHED_RR => SyscallResult.Ok(1),
        SCHED_OTHER or SCHED_BATCH or SCHED_IDLE or SCHED_DEADLINE => SyscallResult.Zero,
        _ => SyscallResult.Error(Errno.EINVAL),
    };

    [Syscall(148)]
    public static SyscallResult SchedRrGetInterval(ISyscallContext c)
    {
        var t = c.Task();
        int pid = (int)c.Arguments.A0;
        if (pid < 0)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        var target = Find(t, pid);
        if (target is null)
        {
            return SyscallResult.Error(Errno.ESRCH);
        }

        // SCHED_RR's default time slice is 100 ms; FIFO has none; the fair classes answer a few ms.
        long nanoseconds = target.Scheduling.Policy switch
        {
            SCHED_FIFO => 0,
            SCHED_RR => 100_000_000,
            _ => 4_000_000,
        };
        t.Mm.WriteValue(c.Arguments.A1, new LinuxTimespec { Seconds = nanoseconds / 1_000_000_000, Nanoseconds = nanoseconds % 1_000_000_000 });
        return SyscallResult.Zero;
    }

    [Syscall(314, SupportLevel.Partial, Note = "SCHED_DEADLINE is never admitted (EBUSY); utilisation clamps are accepted and ignored")]
    public static SyscallResult SchedSetattr(ISyscallContext c)
    {
        var t = c.Task();
        int pid = (int)c.Arguments.A0;
        ulong address = c.Arguments.A1;
        if (pid < 0 || address == 0 || c.Arguments.A2 != 0)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        uint size = t.Mm.ReadValue<uint>(address);
        if (size == 0)
        {
            size = SchedAttrSize0;
        }

        if (size < SchedAttrSize0 || size > PageSize)
        {
            t.Mm.WriteValue(address, (uint)SchedAttrSize1);
            return SyscallResult.Error(Errno.E2BIG);
        }

        var buffer = new byte[size];
        t.Mm.Read(address, buffer);
        for (int i = SchedAttrSize1; i < buffer.Length; i++)
        {
            if (buffer[i] != 0)
            {
                // A newer struct with fields this kernel does not know, set to something: refuse.
                t.Mm.WriteValue(address, (uint)SchedAttrSize1);
                return SyscallResult.Error(Errno.E2BIG);
            }
        }

        // An older, shorter struct reads as if its missing fields were zero.
        Span<byte> known = stackalloc byte[SchedAttrSize1];
        known.Clear();
        buffer.AsSpan(0, Math.Min(buffer.Length, SchedAttrSize1)).CopyTo(known);
        var attr = MemoryMarshal.Read<SchedAttr>(known);
        if ((attr.Flags & ~SCHED_FLAG_ALL) != 0 || attr.Policy < 0)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        var target = Find(t, pid);
        if (target is null)
        {
            return SyscallResult.Error(Errno.ESRCH);
        }

        var current = target.Scheduling;
        int policy = (attr.Flags & SCHED_FLAG_KEEP_POLICY) != 0 ? current.Policy : attr.Policy;
        if (policy == SCHED_DEADLINE)
        {
            return SyscallResult.Error(MayChange(t, target) && t.Credentials.HasCapability(CAP_SYS_NICE) ? Errno.EBUSY : Errno.EPERM);
        }

        bool keepParams = (attr.Flags & SCHED_FLAG_KEEP_PARAMS) != 0;
        int priority = keepParams ? current.Priority : (int)attr.Priority;
        int? nice = keepParams || policy is SCHED_FIFO or SCHED_RR ? null : Math.Clamp(attr.Nice, -20, 19);
        return Apply(t, pid, new SchedulingRequest(policy, priority, nice, (attr.Flags & SCHED_FLAG_RESET_ON_FORK) != 0));
    }

    [Syscall(315)]
    public static SyscallResult SchedGetattr(ISyscallContext c)
    {
        var t = c.Task();
        int pid = (int)c.Arguments.A0;
        uint size = (uint)c.Arguments.A2;
        if (pid < 0 || c.Arguments.A1 == 0 || c.Arguments.A3 != 0 || size < SchedAttrSize0 || size > PageSize)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        var target = Find(t, pid);
        if (target is null)
        {
            return SyscallResult.Error(Errno.ESRCH);
        }

        var s = target.Scheduling;
        var attr = new SchedAttr
        {
            Size = Math.Min(size, (uint)SchedAttrSize1),
            Policy = s.Policy,
            Flags = s.ResetOnFork ? SCHED_FLAG_RESET_ON_FORK : 0,
            Nice = s.Nice,
            Priority = (uint)s.Priority,
            UtilMax = 1024,
        };
        var bytes = MemoryMarshal.AsBytes(new Span<SchedAttr>(ref attr));
        t.Mm.Write(c.Arguments.A1, bytes[..(int)attr.Size]);
        return SyscallResult.Zero;
    }

    private const int IOPRIO_WHO_PROCESS = 1, IOPRIO_WHO_PGRP = 2, IOPRIO_WHO_USER = 3;
    private const int IOPRIO_CLASS_NONE = 0, IOPRIO_CLASS_RT = 1, IOPRIO_CLASS_BE = 2, IOPRIO_CLASS_IDLE = 3, IoprioClassShift = 13;

    [Syscall(252, SupportLevel.Partial, Note = "the value is kept and reported; I/O is not scheduled by it")]
    public static SyscallResult IoprioGet(ISyscallContext c)
    {
        var t = c.Task();
        int which = (int)c.Arguments.A0, who = (int)c.Arguments.A1;
        if (which is < IOPRIO_WHO_PROCESS or > IOPRIO_WHO_USER)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        // Several matches answer the most favoured: real-time first, then the lower level.
        int? best = null;
        foreach (var task in Matching(t, which - 1, who))
        {
            int value = task.Scheduling.IoPriority;
            if (best is not { } b || Rank(value) < Rank(b))
            {
                best = value;
            }
        }

        return best is { } found ? SyscallResult.Ok(found) : SyscallResult.Error(Errno.ESRCH);

        static int Rank(int ioprio)
        {
            int cls = ioprio >> IoprioClassShift;
            return (cls == IOPRIO_CLASS_NONE ? IOPRIO_CLASS_BE : cls) * 8 + (ioprio & 7);
        }
    }

    [Syscall(251, SupportLevel.Partial, Note = "as ioprio_get")]
    public static SyscallResult IoprioSet(ISyscallContext c)
    {
        var t = c.Task();
        int which = (int)c.Arguments.A0, who = (int)c.Arguments.A1, ioprio = (int)c.Arguments.A2;
        if (which is < IOPRIO_WHO_PROCESS or > IOPRIO_WHO_USER)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        // The level is the low three bits; bits 3-12 carry hints that Linux accepts as they are.
        int cls = (ioprio >> IoprioClassShift) & 7, level = ioprio & 7;
        switch (cls)
        {
            case IOPRIO_CLASS_RT:
                if (!t.Credentials.HasCapability(21 /* CAP_SYS_ADMIN */) && !t.Credentials.HasCapability(CAP_SYS_NICE))
                {
                    return SyscallResult.Error(Errno.EPERM);
                }

                break;
            case IOPRIO_CLASS_BE:
            case IOPRIO_CLASS_IDLE:
            case IOPRIO_CLASS_NONE when level == 0:
                break;
            default:
                return SyscallResult.Error(Errno.EINVAL);
        }

        var error = Errno.ESRCH;
        foreach (var task in Matching(t, which - 1, who))
        {
            if (!MayChange(t, task))
            {
                error = Errno.EPERM;
                continue;
            }

            task.Scheduling = task.Scheduling with { IoPriority = ioprio };
            error = error == Errno.ESRCH ? Errno.None : error;
        }

        return error == Errno.None ? SyscallResult.Zero : SyscallResult.Error(error);
    }

    /// <summary>The checks sched_setscheduler and sched_setattr share, then the change.</summary>
    private static SyscallResult Apply(KernelTask t, int pid, SchedulingRequest request)
    {
        bool realTime = request.Policy is SCHED_FIFO or SCHED_RR;
        if (request.Policy is not (SCHED_OTHER or SCHED_FIFO or SCHED_RR or SCHED_BATCH or SCHED_IDLE) ||
            (realTime ? request.Priority is < 1 or > 99 : request.Priority != 0))
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        var target = Find(t, pid);
        if (target is null)
        {
            return SyscallResult.Error(Errno.ESRCH);
        }

        var current = target.Scheduling;
        bool privileged = t.Credentials.HasCapability(CAP_SYS_NICE);
        if (!privileged)
        {
            ulong rtLimit = t.Group.Limits.Get(ResourceLimits.RTPRIO).Current;
            bool raisesRealTime = realTime && (!current.IsRealTime || request.Priority > current.Priority) && (ulong)request.Priority > rtLimit;
            bool dropsResetOnFork = current.ResetOnFork && !request.ResetOnFork;
            bool leavesIdle = current.Policy == SCHED_IDLE && request.Policy != SCHED_IDLE && t.Group.Limits.Get(ResourceLimits.NICE).Current == 0;
            if (!MayChange(t, target) || raisesRealTime || dropsResetOnFork || leavesIdle ||
                (request.Nice is int n && n < current.Nice && !MayLowerNice(t, n)))
            {
                return SyscallResult.Error(Errno.EPERM);
            }
        }

        target.Scheduling = new SchedulingAttributes(request.Policy, request.Priority, request.Nice ?? current.Nice, request.ResetOnFork) { IoPriority = current.IoPriority };
        return SyscallResult.Zero;
    }

    /// <summary>A caller may change a thread it owns (by real or effective uid) or any with CAP_SYS_NICE.</summary>
    private static bool MayChange(KernelTask caller, KernelTask target)
    {
        var mine = caller.Credentials;
        var theirs = target.Credentials;
        return mine.HasCapability(CAP_SYS_NICE) || mine.EffectiveUid == theirs.RealUid || mine.EffectiveUid == theirs.EffectiveUid;
    }

    /// <summary>Lowering nice needs CAP_SYS_NICE or an RLIMIT_NICE of at least 20 - nice.</summary>
    private static bool MayLowerNice(KernelTask caller, int nice) =>
        caller.Credentials.HasCapability(CAP_SYS_NICE) || (ulong)(20 - nice) <= caller.Group.Limits.Get(ResourceLimits.NICE).Current;

    private static KernelTask? Find(KernelTask t, int pid) => pid == 0 ? t : t.Kernel.Pids.FindTask(pid);

    /// <summary>The threads getpriority/setpriority's which/who name: one thread, a process group, or a user's threads.</summary>
    private static IEnumerable<KernelTask> Matching(KernelTask t, int which, int who)
    {
        switch (which)
        {
            case PRIO_PROCESS:
                var task = Find(t, who);
                return task is null ? [] : [task];
            case PRIO_PGRP:
                int pgid = who == 0 ? t.Group.ProcessGroup : who;
                return t.Kernel.Pids.Tasks().Where(x => x.Group.ProcessGroup == pgid && !x.Killed);
            default:
                int uid = who == 0 ? t.Credentials.EffectiveUid : who;
                return t.Kernel.Pids.Tasks().Where(x => x.Credentials.RealUid == uid && !x.Killed);
        }
    }

    private readonly record struct SchedulingRequest(int Policy, int Priority, int? Nice, bool ResetOnFork);

    /// <summary>struct sched_attr (SCHED_ATTR_SIZE_VER1).</summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct SchedAttr
    {
        public uint Size;
        public int Policy;
        public ulong Flags;
        public int Nice;
        public uint Priority;
        public ulong Runtime;
        public ulong Deadline;
        public ulong Period;
        public uint UtilMin;
        public uint UtilMax;
    }

    [Syscall(204)]
    public static SyscallResult SchedGetaffinity(ISyscallContext c)
    {
        var t = c.Task();
        ulong length = c.Arguments.A1;
        int cpus = Environment.ProcessorCount;
        int bytes = ((cpus + 63) / 64) * 8;
        if (length < (ulong)bytes || (length & 7) != 0)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        if ((int)c.Arguments.A0 != 0 && t.Kernel.Pids.FindTask((int)c.Arguments.A0) is null)
        {
            return SyscallResult.Error(Errno.ESRCH);
        }

        var mask = new byte[bytes];
        for (int i = 0; i < cpus; i++)
        {
            mask[i / 8] |= (byte)(1 << (i % 8));
        }

        t.Mm.Write(c.Arguments.A2, mask);
        return SyscallResult.Ok(bytes);
    }

    [Syscall(203, SupportLevel.Partial, Note = "the mask is checked but threads are placed by the platform")]
    public static SyscallResult SchedSetaffinity(ISyscallContext c)
    {
        var t = c.Task();
        ulong length = Math.Min(c.Arguments.A1, 128);
        var mask = new byte[length];
        t.Mm.Read(c.Arguments.A2, mask);
        int cpus = Environment.ProcessorCount;
        for (int i = 0; i < cpus && i / 8 < mask.Length; i++)
        {
            if ((mask[i / 8] & (1 << (i % 8))) != 0)
            {
                return SyscallResult.Zero;
            }
        }

        return SyscallResult.Error(Errno.EINVAL);
    }

    [Syscall(24)]
    public static SyscallResult SchedYield(ISyscallContext c)
    {
        Thread.Yield();
        return SyscallResult.Zero;
    }

    [Syscall(309)]
    public static SyscallResult Getcpu(ISyscallContext c)
    {
        var t = c.Task();
        if (c.Arguments.A0 != 0)
        {
            t.Mm.WriteValue(c.Arguments.A0, (uint)Thread.GetCurrentProcessorId() % (uint)Environment.ProcessorCount);
        }

        if (c.Arguments.A1 != 0)
        {
            t.Mm.WriteValue(c.Arguments.A1, 0u);
        }

        return SyscallResult.Zero;
    }

}
