using AppKernel.Platform.Ptrace.Native;

namespace AppKernel.Platform.Ptrace;

/// <summary>
/// The CPU time of one stub thread, read from procfs: <c>/proc/PID/task/TID/schedstat</c> (the
/// scheduler's nanosecond run time) or, where the kernel lacks schedstat, the user and system
/// ticks of <c>/proc/PID/task/TID/stat</c>. The file is opened once and re-read with pread, so a
/// sample costs one host syscall and allocates nothing. Thread-safe; after <see cref="Freeze"/>
/// it reports the last figure.
/// </summary>
/// <remarks>
/// A thread clock id cannot be used: Linux lets a process read the thread CPU clocks of its own
/// threads only, and the stub thread belongs to another process. A stub thread stops at every
/// program syscall, and the scheduler folds the run time in at every stop, so the figure is exact
/// at syscall boundaries and at most a scheduler tick behind while the program computes.
/// </remarks>
internal sealed unsafe class StubCpuClock
{
    private static readonly long NanosecondsPerTick = 1_000_000_000L / Math.Max(1, LibC.Sysconf(LibC.SC_CLK_TCK));

    private readonly object gate = new();
    private readonly int processId;
    private readonly int threadId;
    private int fd = -1;
    private bool schedstat;
    private bool frozen;
    private long last;

    public StubCpuClock(int processId, int threadId)
    {
        this.processId = processId;
        this.threadId = threadId;
    }

    /// <summary>Nanoseconds of CPU the thread has used (never less than a previous answer).</summary>
    public long Nanoseconds
    {
        get
        {
            lock (gate)
            {
                if (!frozen)
                {
                    long now = Read();
                    if (now > last)
                    {
                        last = now;
                    }
                }

                return last;
            }
        }
    }

    /// <summary>Takes a last sample and closes the file: called before the stub thread ends.</summary>
    public void Freeze()
    {
        lock (gate)
        {
            if (frozen)
            {
                return;
            }

            long now = Read();
            if (now > last)
            {
                last = now;
            }

            frozen = true;
            if (fd >= 0)
            {
                LibC.Close(fd);
                fd = -1;
            }
        }
    }

    private long Read()
    {
        if (fd < 0 && !Open())
        {
            return last;
        }

        byte* buffer = stackalloc byte[512];
        nint n = LibC.Pread(fd, buffer, 512, 0);
        if (n <= 0)
        {
            return last; // the thread is gone: keep the last figure
        }

        var text = new ReadOnlySpan<byte>(buffer, (int)n);
        return schedstat ? ParseSchedstat(text) : ParseStat(text);
    }

    private bool Open()
    {
        string task = $"/proc/{processId}/task/{threadId}/";
        fd = LibC.Open(task + "schedstat", LibC.O_RDONLY | LibC.O_CLOEXEC);
        schedstat = fd >= 0;
        if (fd < 0)
        {
            fd = LibC.Open(task + "stat", LibC.O_RDONLY | LibC.O_CLOEXEC);
        }

        return fd >= 0;
    }

    /// <summary>schedstat: "run-time-ns wait-time-ns timeslices".</summary>
    private long ParseSchedstat(ReadOnlySpan<byte> text)
    {
        long value = 0;
        int i = 0;
        for (; i < text.Length && text[i] >= (byte)'0' && text[i] <= (byte)'9'; i++)
        {
            value = value * 10 + (text[i] - '0');
        }

        return i == 0 ? last : value;
    }

    /// <summary>stat: fields 14 and 15 (utime, stime in clock ticks), counted after the ")" that ends the name.</summary>
    private long ParseStat(ReadOnlySpan<byte> text)
    {
        int close = text.LastIndexOf((byte)')');
        if (close < 0)
        {
            return last;
        }

        // After ") " comes field 3 (state); utime is field 14.
        int field = 2;
        long utime = 0, stime = 0;
        for (int i = close + 1; i < text.Length; i++)
        {
            if (text[i] == (byte)' ')
            {
                field++;
                continue;
            }

            if (field is 14 or 15 && text[i] >= (byte)'0' && text[i] <= (byte)'9')
            {
                if (field == 14)
                {
                    utime = utime * 10 + (text[i] - '0');
                }
                else
                {
                    stime = stime * 10 + (text[i] - '0');
                }
            }
            else if (field > 15)
            {
                break;
            }
        }

        return (utime + stime) * NanosecondsPerTick;
    }
}
