using AppKernel.Sentry.Abi;

namespace AppKernel.Sentry.Kernel;

/// <summary>A process's rlimits (getrlimit(2) resources 0-15); inherited by fork and kept across execve.</summary>
internal sealed class ResourceLimits
{
    public const ulong Infinity = ulong.MaxValue;
    public const int CPU = 0, FSIZE = 1, DATA = 2, STACK = 3, CORE = 4, RSS = 5, NPROC = 6, NOFILE = 7,
        MEMLOCK = 8, AS = 9, LOCKS = 10, SIGPENDING = 11, MSGQUEUE = 12, NICE = 13, RTPRIO = 14, RTTIME = 15, Count = 16;

    private readonly LinuxRlimit[] limits = new LinuxRlimit[Count];

    public static ResourceLimits Defaults(SandboxLimits sandbox)
    {
        var l = new ResourceLimits();
        for (int i = 0; i < Count; i++)
        {
            l.limits[i] = new LinuxRlimit { Current = Infinity, Max = Infinity };
        }

        l.limits[STACK] = new LinuxRlimit { Current = 8UL << 20, Max = Infinity };
        l.limits[CORE] = new LinuxRlimit { Current = 0, Max = Infinity };
        l.limits[MEMLOCK] = new LinuxRlimit { Current = 8UL << 20, Max = 8UL << 20 };
        l.limits[SIGPENDING] = new LinuxRlimit { Current = 63704, Max = 63704 };
        l.limits[MSGQUEUE] = new LinuxRlimit { Current = 819200, Max = 819200 };
        l.limits[NICE] = new LinuxRlimit { Current = 0, Max = 0 };
        l.limits[RTPRIO] = new LinuxRlimit { Current = 0, Max = 0 };
        ulong files = sandbox.OpenFiles is { } f ? (ulong)f : 1024;
        l.limits[NOFILE] = new LinuxRlimit { Current = files, Max = sandbox.OpenFiles is { } hard ? (ulong)hard : 524288 };
        ulong tasks = sandbox.Tasks is { } t ? (ulong)t : 63704;
        l.limits[NPROC] = new LinuxRlimit { Current = tasks, Max = tasks };
        if (sandbox.CpuSeconds is { } cpu)
        {
            ulong seconds = (ulong)Math.Ceiling(cpu);
            l.limits[CPU] = new LinuxRlimit { Current = seconds, Max = seconds + 1 };
        }

        return l;
    }

    public LinuxRlimit Get(int resource)
    {
        lock (limits)
        {
            return limits[resource];
        }
    }

    /// <summary>setrlimit rules: soft ≤ hard (EINVAL); raising the hard limit needs root (EPERM).</summary>
    public void Set(int resource, LinuxRlimit value, bool privileged)
    {
        if (value.Current > value.Max)
        {
            throw ErrnoException.Of(Errno.EINVAL);
        }

        lock (limits)
        {
            if (value.Max > limits[resource].Max && !privileged)
            {
                throw ErrnoException.Of(Errno.EPERM);
            }

            if (resource == NOFILE && value.Max > 1 << 20)
            {
                throw ErrnoException.Of(Errno.EPERM);
            }

            limits[resource] = value;
        }

        if (resource == CPU)
        {
            CpuLimitChanged?.Invoke();
        }
    }

    /// <summary>Called after RLIMIT_CPU changes (the process's CPU-time checks re-arm); not copied by <see cref="Clone"/>.</summary>
    public Action? CpuLimitChanged { get; set; }

    public int OpenFilesLimit => (int)Math.Min(Get(NOFILE).Current, int.MaxValue);

    public ResourceLimits Clone()
    {
        var copy = new ResourceLimits();
        lock (limits)
        {
            limits.CopyTo(copy.limits, 0);
        }

        return copy;
    }
}
