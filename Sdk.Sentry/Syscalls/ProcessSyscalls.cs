using System.Security.Cryptography;
using System.Text;
using AppKernel.Sentry.Abi;
using AppKernel.Sentry.Kernel;
using AppKernel.Syscalls;

namespace AppKernel.Sentry.Syscalls;

/// <summary>Who a process is and what it may use: ids, exit, names, limits, sysinfo, arch_prctl, prctl, getrandom.</summary>
internal static class ProcessSyscalls
{
    [Syscall(60)]
    public static SyscallResult Exit(ISyscallContext c)
    {
        var t = c.Task();
        t.ExitCode = (int)(c.Arguments.A0 & 0xff);
        t.Kill();
        return SyscallResult.NoReturn;
    }

    [Syscall(231)]
    public static SyscallResult ExitGroup(ISyscallContext c)
    {
        var t = c.Task();
        t.ExitCode = (int)(c.Arguments.A0 & 0xff);
        t.Group.BeginExit(ExitStatus.Exited(t.ExitCode));
        return SyscallResult.NoReturn;
    }

    [Syscall(39)]
    public static SyscallResult Getpid(ISyscallContext c) => SyscallResult.Ok(c.Task().Group.Pid);

    [Syscall(186)]
    public static SyscallResult Gettid(ISyscallContext c) => SyscallResult.Ok(c.Task().Tid);

    [Syscall(110)]
    public static SyscallResult Getppid(ISyscallContext c) => SyscallResult.Ok(c.Task().Group.Parent?.Pid ?? 0);

    [Syscall(102)]
    public static SyscallResult Getuid(ISyscallContext c) => SyscallResult.Ok(c.Task().Credentials.RealUid);

    [Syscall(107)]
    public static SyscallResult Geteuid(ISyscallContext c) => SyscallResult.Ok(c.Task().Credentials.EffectiveUid);

    [Syscall(104)]
    public static SyscallResult Getgid(ISyscallContext c) => SyscallResult.Ok(c.Task().Credentials.RealGid);

    [Syscall(108)]
    public static SyscallResult Getegid(ISyscallContext c) => SyscallResult.Ok(c.Task().Credentials.EffectiveGid);

    [Syscall(118)]
    public static SyscallResult Getresuid(ISyscallContext c)
    {
        var t = c.Task();
        var creds = t.Credentials;
        t.Mm.WriteValue(c.Arguments.A0, creds.RealUid);
        t.Mm.WriteValue(c.Arguments.A1, creds.EffectiveUid);
        t.Mm.WriteValue(c.Arguments.A2, creds.SavedUid);
        return SyscallResult.Zero;
    }

    [Syscall(120)]
    public static SyscallResult Getresgid(ISyscallContext c)
    {
        var t = c.Task();
        var creds = t.Credentials;
        t.Mm.WriteValue(c.Arguments.A0, creds.RealGid);
        t.Mm.WriteValue(c.Arguments.A1, creds.EffectiveGid);
        t.Mm.WriteValue(c.Arguments.A2, creds.SavedGid);
        return SyscallResult.Zero;
    }

    [Syscall(115)]
    public static SyscallResult Getgroups(ISyscallContext c)
    {
        var t = c.Task();
        int size = (int)c.Arguments.A0;
        var groups = t.Credentials.Groups;
        if (size == 0)
        {
            return SyscallResult.Ok(groups.Length);
        }

        if (size < groups.Length || size < 0)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        t.Mm.Write(c.Arguments.A1, System.Runtime.InteropServices.MemoryMarshal.AsBytes(groups.AsSpan()));
        return SyscallResult.Ok(groups.Length);
    }

    [Syscall(111)]
    public static SyscallResult Getpgrp(ISyscallContext c) => SyscallResult.Ok(c.Task().Group.ProcessGroup);

    [Syscall(121)]
    public static SyscallResult Getpgid(ISyscallContext c) => SyscallResult.Ok(FindGroup(c).ProcessGroup);

    [Syscall(124)]
    public static SyscallResult Getsid(ISyscallContext c) => SyscallResult.Ok(FindGroup(c).Session);

    [Syscall(109)]
    public static SyscallResult Setpgid(ISyscallContext c)
    {
        var t = c.Task();
        int pid = (int)c.Arguments.A0;
        int pgid = (int)c.Arguments.A1;

        // As Linux: pgid 0 means "the target's pid" (pid 0 the caller) before the sign check.
        if (pgid == 0 && pid != 0)
        {
            pgid = pid;
        }

        if (pgid < 0)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        var pids = t.Kernel.Pids;
        lock (pids.Gate)
        {
            var target = pid == 0 ? t.Group : pids.FindGroup(pid);
            if (target is null || (target != t.Group && target.Parent != t.Group))
            {
                return SyscallResult.Error(Errno.ESRCH);
            }

            if (target != t.Group && target.HasExecuted)
            {
                return SyscallResult.Error(Errno.EACCES);
            }

            if (target.Session != t.Group.Session || target.Session == target.Pid)
            {
                // A child in another session, or a session leader, cannot change group.
                return SyscallResult.Error(Errno.EPERM);
            }

            int group = pgid == 0 ? target.Pid : pgid;
            if (group != target.Pid && !pids.Groups().Any(g => g.ProcessGroup == group && g.Session == t.Group.Session))
            {
                return SyscallResult.Error(Errno.EPERM);
            }

            target.ProcessGroup = group;
            return SyscallResult.Zero;
        }
    }

    [Syscall(112)]
    public static SyscallResult Setsid(ISyscallContext c)
    {
        var t = c.Task();
        var pids = t.Kernel.Pids;
        lock (pids.Gate)
        {
            var group = t.Group;
            // A process group leader cannot start a session, nor anyone whose pid names a group.
            if (group.ProcessGroup == group.Pid || pids.Groups().Any(g => g.ProcessGroup == group.Pid))
            {
                return SyscallResult.Error(Errno.EPERM);
            }

            group.Session = group.Pid;
            group.ProcessGroup = group.Pid;
            group.ControllingTerminal = null;
            return SyscallResult.Ok(group.Pid);
        }
    }

    private static ThreadGroup FindGroup(ISyscallContext c)
    {
        var t = c.Task();
        int pid = (int)c.Arguments.A0;
        return pid == 0 ? t.Group : t.Kernel.Pids.FindGroup(pid) ?? throw ErrnoException.Of(Errno.ESRCH);
    }

    [Syscall(218)]
    public static SyscallResult SetTidAddress(ISyscallContext c)
    {
        var t = c.Task();
        t.ClearChildTid = c.Arguments.A0;
        return SyscallResult.Ok(t.Tid);
    }

    [Syscall(273)]
    public static SyscallResult SetRobustList(ISyscallContext c)
    {
        var t = c.Task();
        if (c.Arguments.A1 != 24)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        t.RobustList = c.Arguments.A0;
        t.RobustListLength = c.Arguments.A1;
        return SyscallResult.Zero;
    }

    [Syscall(274)]
    public static SyscallResult GetRobustList(ISyscallContext c)
    {
        var t = c.Task();
        int pid = (int)c.Arguments.A0;
        var target = pid == 0 ? t : t.Kernel.Pids.FindTask(pid) ?? throw ErrnoException.Of(Errno.ESRCH);
        t.Mm.WriteValue(c.Arguments.A1, target.RobustList);
        t.Mm.WriteValue(c.Arguments.A2, 24UL);
        return SyscallResult.Zero;
    }

    private const int ARCH_SET_GS = 0x1001, ARCH_SET_FS = 0x1002, ARCH_GET_FS = 0x1003, ARCH_GET_GS = 0x1004,
        ARCH_GET_CPUID = 0x1011, ARCH_SET_CPUID = 0x1012;

    [Syscall(158, SupportLevel.Partial, Note = "ARCH_SET_CPUID gives ENODEV (CPUID faulting is not offered)")]
    public static SyscallResult ArchPrctl(ISyscallContext c)
    {
        var t = c.Task();
        ulong value = c.Arguments.A1;
        ref var r = ref t.Cpu.Registers;
        switch ((int)c.Arguments.A0)
        {
            case ARCH_SET_FS:
                if (value >= 0x800000000000UL)
                {
                    return SyscallResult.Error(Errno.EPERM);
                }

                r.FsBase = value;
                return SyscallResult.Zero;
            case ARCH_SET_GS:
                if (value >= 0x800000000000UL)
                {
                    return SyscallResult.Error(Errno.EPERM);
                }

                r.GsBase = value;
                return SyscallResult.Zero;
            case ARCH_GET_FS:
                t.Mm.WriteValue(value, r.FsBase);
                return SyscallResult.Zero;
            case ARCH_GET_GS:
                t.Mm.WriteValue(value, r.GsBase);
                return SyscallResult.Zero;
            case ARCH_GET_CPUID:
                return SyscallResult.Ok(1);
            case ARCH_SET_CPUID:
                return SyscallResult.Error(Errno.ENODEV);
            default:
                return SyscallResult.Error(Errno.EINVAL);
        }
    }

    [Syscall(157, SupportLevel.Partial, Note = "names, death signal, dumpable, no_new_privs, child subreaper, timer slack, keepcaps; others give EINVAL")]
    public static SyscallResult Prctl(ISyscallContext c)
    {
        var t = c.Task();
        var a = c.Arguments;
        switch ((int)a.A0)
        {
            case 15: // PR_SET_NAME
            {
                // Up to 16 bytes, stopping at a NUL; bytes past an unmapped page are not needed.
                string name;
                try
                {
                    name = t.Mm.ReadCString(a.A1, 15);
                }
                catch (ErrnoException e) when (e.Errno == Errno.ENAMETOOLONG)
                {
                    var bytes = new byte[15];
                    t.Mm.Read(a.A1, bytes);
                    name = Encoding.UTF8.GetString(bytes);
                }

                t.Name = name;
                return SyscallResult.Zero;
            }

            case 16: // PR_GET_NAME
            {
                var bytes = new byte[16];
                Encoding.UTF8.GetBytes(t.Name.AsSpan(0, Math.Min(t.Name.Length, 15)), bytes);
                t.Mm.Write(a.A1, bytes);
                return SyscallResult.Zero;
            }

            case 1: // PR_SET_PDEATHSIG
                if (a.A1 > Signals.NSIG)
                {
                    return SyscallResult.Error(Errno.EINVAL);
                }

                t.ParentDeathSignal = (int)a.A1;
                return SyscallResult.Zero;
            case 2: // PR_GET_PDEATHSIG
                t.Mm.WriteValue(a.A1, t.ParentDeathSignal);
                return SyscallResult.Zero;
            case 3: // PR_GET_DUMPABLE
                return SyscallResult.Ok(t.Group.Dumpable ? 1 : 0);
            case 4: // PR_SET_DUMPABLE
                if (a.A1 > 1)
                {
                    return SyscallResult.Error(Errno.EINVAL);
                }

                t.Group.Dumpable = a.A1 == 1;
                return SyscallResult.Zero;
            case 38: // PR_SET_NO_NEW_PRIVS
                if (a.A1 != 1 || a.A2 != 0 || a.A3 != 0 || a.A4 != 0)
                {
                    return SyscallResult.Error(Errno.EINVAL);
                }

                t.NoNewPrivileges = true;
                return SyscallResult.Zero;
            case 39: // PR_GET_NO_NEW_PRIVS
                return SyscallResult.Ok(t.NoNewPrivileges ? 1 : 0);
            case 21: // PR_GET_SECCOMP
                return SyscallResult.Zero;
            case 36: // PR_SET_CHILD_SUBREAPER
                t.Group.ChildSubreaper = a.A1 != 0;
                return SyscallResult.Zero;
            case 37: // PR_GET_CHILD_SUBREAPER
                t.Mm.WriteValue(a.A1, t.Group.ChildSubreaper ? 1 : 0);
                return SyscallResult.Zero;
            case 29: // PR_SET_TIMERSLACK
                return SyscallResult.Zero;
            case 30: // PR_GET_TIMERSLACK
                return SyscallResult.Ok(50000);
            case 7: // PR_GET_KEEPCAPS
                return SyscallResult.Ok(t.Credentials.KeepCaps ? 1 : 0);
            case 8: // PR_SET_KEEPCAPS
                if (a.A1 > 1)
                {
                    return SyscallResult.Error(Errno.EINVAL);
                }

                t.Credentials = t.Credentials with { KeepCaps = a.A1 == 1 };
                return SyscallResult.Zero;
            case 23: // PR_CAPBSET_READ
                return a.A1 > Credentials.LastCapability ? SyscallResult.Error(Errno.EINVAL)
                    : SyscallResult.Ok((t.Credentials.BoundingCaps >> (int)a.A1) & 1);
            case 24: // PR_CAPBSET_DROP
                if (a.A1 > Credentials.LastCapability)
                {
                    return SyscallResult.Error(Errno.EINVAL);
                }

                if (!t.Credentials.HasCapability(8)) // CAP_SETPCAP
                {
                    return SyscallResult.Error(Errno.EPERM);
                }

                t.Credentials = t.Credentials with { BoundingCaps = t.Credentials.BoundingCaps & ~(1UL << (int)a.A1) };
                return SyscallResult.Zero;
            case 0x53564d41: // PR_SET_VMA (naming anonymous memory): accepted, names are not shown
                return SyscallResult.Zero;
            default:
                return SyscallResult.Error(Errno.EINVAL);
        }
    }

    [Syscall(99)]
    public static SyscallResult Sysinfo(ISyscallContext c)
    {
        var t = c.Task();
        var kernel = t.Kernel;
        ulong total = (ulong)(kernel.Options.Limits.MemoryBytes ?? HostMemory.TotalBytes);
        ulong used = (ulong)kernel.MemoryFile.ResidentBytes;
        var info = new LinuxSysinfo
        {
            Uptime = Math.Max(1, (Kernel.Kernel.Now - kernel.BootTime) / 1_000_000_000),
            TotalRam = total,
            FreeRam = total > used ? total - used : 0,
            Procs = (ushort)Math.Min(kernel.Pids.TaskCount, ushort.MaxValue),
            MemUnit = 1,
        };
        t.Mm.WriteValue(c.Arguments.A0, info);
        return SyscallResult.Zero;
    }

    [Syscall(97)]
    public static SyscallResult Getrlimit(ISyscallContext c)
    {
        var t = c.Task();
        int resource = (int)c.Arguments.A0;
        if ((uint)resource >= ResourceLimits.Count)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        t.Mm.WriteValue(c.Arguments.A1, t.Group.Limits.Get(resource));
        return SyscallResult.Zero;
    }

    [Syscall(160)]
    public static SyscallResult Setrlimit(ISyscallContext c)
    {
        var t = c.Task();
        int resource = (int)c.Arguments.A0;
        if ((uint)resource >= ResourceLimits.Count)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        var value = t.Mm.ReadValue<LinuxRlimit>(c.Arguments.A1);
        t.Group.Limits.Set(resource, value, t.Credentials.IsRoot);
        return SyscallResult.Zero;
    }

    [Syscall(302)]
    public static SyscallResult Prlimit64(ISyscallContext c)
    {
        var t = c.Task();
        var a = c.Arguments;
        int pid = (int)a.A0;
        int resource = (int)a.A1;
        if ((uint)resource >= ResourceLimits.Count)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        var group = pid == 0 ? t.Group : t.Kernel.Pids.FindGroup(pid) ?? throw ErrnoException.Of(Errno.ESRCH);
        LinuxRlimit? next = a.A2 != 0 ? t.Mm.ReadValue<LinuxRlimit>(a.A2) : null;
        var old = group.Limits.Get(resource);
        if (next is { } value)
        {
            group.Limits.Set(resource, value, t.Credentials.IsRoot);
        }

        if (a.A3 != 0)
        {
            t.Mm.WriteValue(a.A3, old);
        }

        return SyscallResult.Zero;
    }

    [Syscall(318)]
    public static SyscallResult Getrandom(ISyscallContext c)
    {
        var t = c.Task();
        ulong flags = c.Arguments.A2;
        const ulong GRND_NONBLOCK = 1, GRND_RANDOM = 2, GRND_INSECURE = 4;
        if ((flags & ~(GRND_NONBLOCK | GRND_RANDOM | GRND_INSECURE)) != 0 || (flags & (GRND_RANDOM | GRND_INSECURE)) == (GRND_RANDOM | GRND_INSECURE))
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        int length = (int)Math.Min(c.Arguments.A1, 33554431);
        var bytes = new byte[Math.Min(length, 1 << 20)];
        int done = 0;
        while (done < length)
        {
            int n = Math.Min(bytes.Length, length - done);
            RandomNumberGenerator.Fill(bytes.AsSpan(0, n));
            t.Mm.Write(c.Arguments.A0 + (ulong)done, bytes.AsSpan(0, n));
            done += n;
        }

        return SyscallResult.Ok(done);
    }

    [Syscall(135)]
    public static SyscallResult Personality(ISyscallContext c)
    {
        var t = c.Task();
        uint persona = (uint)c.Arguments.A0;
        int old = t.Group.Personality;
        if (persona != 0xffffffff)
        {
            t.Group.Personality = (int)persona;
        }

        return SyscallResult.Ok(old);
    }
}

/// <summary>What the host has, for sysinfo and /proc/meminfo when the sandbox has no memory limit.</summary>
internal static class HostMemory
{
    public static long TotalBytes { get; } = ReadTotal();

    private static long ReadTotal()
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/meminfo"))
            {
                if (line.StartsWith("MemTotal:", StringComparison.Ordinal))
                {
                    return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) * 1024;
                }
            }
        }
        catch (IOException)
        {
        }

        return 4L << 30;
    }
}
