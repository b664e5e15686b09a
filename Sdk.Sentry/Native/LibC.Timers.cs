using System.Runtime.InteropServices;

namespace AppKernel.Sentry.Native;

// Host timers: a timerfd per armed sandbox timerfd, watched by the kernel's HostPoller, gives
// wake-ups with the host's precision (the .NET timer queue runs on a coarse millisecond clock).
internal static unsafe partial class LibC
{
    public const int CLOCK_MONOTONIC = 1;
    public const int TFD_NONBLOCK = 0x800, TFD_CLOEXEC = 0x80000;

    /// <summary>struct itimerspec.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct HostItimerspec
    {
        public long IntervalSeconds, IntervalNanoseconds, ValueSeconds, ValueNanoseconds;
    }

    [LibraryImport(Lib, EntryPoint = "timerfd_create", SetLastError = true)]
    public static partial int TimerfdCreate(int clock, int flags);

    [LibraryImport(Lib, EntryPoint = "timerfd_settime", SetLastError = true)]
    public static partial int TimerfdSettime(int fd, int flags, HostItimerspec* value, HostItimerspec* old);
}
