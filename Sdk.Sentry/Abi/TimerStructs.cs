using System.Runtime.InteropServices;

namespace AppKernel.Sentry.Abi;

// The C layouts of the timer, signal-wait and resource-usage syscalls (x86-64).

/// <summary>struct itimerval (setitimer, getitimer): interval, then value.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct LinuxItimerval
{
    public LinuxTimeval Interval;
    public LinuxTimeval Value;
}

/// <summary>struct itimerspec (timer_settime, timer_gettime): interval, then value.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct LinuxItimerspec
{
    public LinuxTimespec Interval;
    public LinuxTimespec Value;
}

/// <summary>The kernel's struct sigevent (64 bytes): value, signal, notify, then a union whose first int is the thread id.</summary>
[StructLayout(LayoutKind.Explicit, Size = 64)]
internal struct LinuxSigevent
{
    [FieldOffset(0)] public ulong Value;
    [FieldOffset(8)] public int Signo;
    [FieldOffset(12)] public int Notify;
    [FieldOffset(16)] public int ThreadId;
}

/// <summary>struct rusage (144 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct LinuxRusage
{
    public LinuxTimeval UserTime;
    public LinuxTimeval SystemTime;
    public long MaxRss, SharedRss, UnsharedData, UnsharedStack, MinorFaults, MajorFaults, Swaps,
        BlocksIn, BlocksOut, MessagesSent, MessagesReceived, Signals, VoluntarySwitches, InvoluntarySwitches;
}

/// <summary>struct tms (times): clock ticks.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct LinuxTms
{
    public long UserTime, SystemTime, ChildrenUserTime, ChildrenSystemTime;
}

/// <summary>Constants of the timer syscalls.</summary>
internal static class TimerConstants
{
    public const int ITIMER_REAL = 0, ITIMER_VIRTUAL = 1, ITIMER_PROF = 2;
    public const int SIGEV_SIGNAL = 0, SIGEV_NONE = 1, SIGEV_THREAD = 2, SIGEV_THREAD_ID = 4;
    public const int TIMER_ABSTIME = 1;

    /// <summary>The tick Linux rounds CPU itimers by (HZ=250).</summary>
    public const long TickNanoseconds = 4_000_000;

    /// <summary>USER_HZ: the unit of times(2) and clock_t.</summary>
    public const long UserHz = 100;

    public const int RUSAGE_SELF = 0, RUSAGE_CHILDREN = -1, RUSAGE_THREAD = 1;
}
