using System.Runtime.InteropServices;

namespace AppKernel.Platform.Ptrace.Native;

/// <summary>The head of the kernel's 128-byte <c>siginfo_t</c>, as PTRACE_GETSIGINFO fills it.</summary>
[StructLayout(LayoutKind.Explicit, Size = 128)]
internal struct SigInfo
{
    [FieldOffset(0)]
    public int Signo;

    [FieldOffset(4)]
    public int Errno;

    [FieldOffset(8)]
    public int Code;

    /// <summary><c>si_addr</c> for SIGSEGV, SIGBUS, SIGILL, SIGFPE and SIGTRAP; <c>si_call_addr</c> for a seccomp SIGSYS.</summary>
    [FieldOffset(16)]
    public ulong Address;

    /// <summary><c>si_syscall</c> of a seccomp SIGSYS.</summary>
    [FieldOffset(24)]
    public int Syscall;
}

/// <summary>The <c>struct iovec</c> of PTRACE_GETREGSET / PTRACE_SETREGSET.</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct IoVec
{
    public void* Base;
    public nuint Length;
}
