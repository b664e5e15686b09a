using System.Runtime.InteropServices;

namespace AppKernel.Sentry.Native;

// Host timers: a timerfd per armed sandbox timerfd (watched by the kernel's HostPoller) and the
// kernel timer thread's own, for wake-ups with the host's precision (the .NET timer queue runs on a
// coarse millisecond clock); thread CPU clocks for CPU-time accounting.
internal static unsafe partial class LibC
{
    public const int CLOCK_MONOTONIC = 1, CLOCK_THREAD_CPUTIME_ID = 3;
    public const int TFD_NONBLOCK = 0x800, TFD_CLOEXEC = 0x80000, TFD_TIMER_ABSTIME = 1;

    /// <summary>struct itimerspec: interval, then value.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct HostItimerspec
    {
        public long IntervalSeconds, IntervalNanoseconds, ValueSeconds, ValueNanoseconds;
    }

    [LibraryImport(Lib, EntryPoint = "timerfd_create", SetLastError = true)]
    public static partial int TimerfdCreate(int clock, int flags);

    [LibraryImport(Lib, EntryPoint = "timerfd_settime", SetLastError = true)]
    public static partial int TimerfdSettime(int fd, int flags, HostItimerspec* value, HostItimerspec* old);

    [LibraryImport(Lib, EntryPoint = "gettid")]
    public static partial int Gettid();

    /// <summary>The CPU clock of host thread <paramref name="tid"/> of this process (Linux's MAKE_THREAD_CPUCLOCK with CPUCLOCK_SCHED).</summary>
    public static int ThreadCpuClock(int tid) => (~tid << 3) | 4 | 2;
}
