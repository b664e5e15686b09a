using System.Runtime.InteropServices;

namespace AppKernel.Sentry.Kernel;

/// <summary>
/// Linux's siginfo_t (128 bytes) with the union fields at their x86-64 offsets:
/// kill/rt (pid, uid, value), SIGCHLD (pid, uid, status), faults (addr), timers (id, overrun, value).
/// </summary>
[StructLayout(LayoutKind.Explicit, Size = 128)]
internal struct SignalInfo
{
    [FieldOffset(0)] public int Signo;
    [FieldOffset(4)] public int Errno;
    [FieldOffset(8)] public int Code;
    [FieldOffset(16)] public int Pid;
    [FieldOffset(20)] public int Uid;
    [FieldOffset(24)] public int Status;
    [FieldOffset(24)] public ulong Value;
    [FieldOffset(16)] public ulong Address;
    [FieldOffset(16)] public int TimerId;
    [FieldOffset(20)] public int Overrun;
    [FieldOffset(32)] public long UserTime;
    [FieldOffset(40)] public long SystemTime;

    /// <summary>
    /// Kernel-private: nonzero on the signal of a POSIX timer (the timer's unique id), so its
    /// delivery can re-arm it. Programs never see it: it lies past the 48 bytes a program's siginfo
    /// can set and is cleared when the signal is dequeued.
    /// </summary>
    [FieldOffset(120)] public long TimerToken;

    public static SignalInfo Kernel(int signal) => new() { Signo = signal, Code = Abi.Signals.SI_KERNEL };

    public static SignalInfo User(int signal, int pid, int uid, int code = Abi.Signals.SI_USER) =>
        new() { Signo = signal, Code = code, Pid = pid, Uid = uid };

    public static SignalInfo Fault(int signal, int code, ulong address) =>
        new() { Signo = signal, Code = code, Address = address };
}
