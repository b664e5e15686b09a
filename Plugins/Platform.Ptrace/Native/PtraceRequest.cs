namespace AppKernel.Platform.Ptrace.Native;

/// <summary>The ptrace requests, options and events the platform uses (Linux x86-64 numbers).</summary>
internal static class PtraceRequest
{
    public const long Cont = 7, Detach = 17, GetRegs = 12, SetRegs = 13, Sysemu = 31;
    public const long SetOptions = 0x4200, GetEventMsg = 0x4201, GetSigInfo = 0x4202;
    public const long GetRegSet = 0x4204, SetRegSet = 0x4205, Seize = 0x4206, Interrupt = 0x4207;

    public const long OptionTraceSysGood = 1, OptionTraceClone = 8, OptionExitKill = 0x100000;

    public const int EventClone = 3, EventStop = 128;

    /// <summary>The regset note type of the XSAVE image.</summary>
    public const int NtX86Xstate = 0x202;

    /// <summary>The stop signal of a syscall stop with PTRACE_O_TRACESYSGOOD.</summary>
    public const int SyscallStopSignal = LibC.SIGTRAP | 0x80;
}
