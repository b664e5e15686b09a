using System.Runtime.InteropServices;

namespace AppKernel.Platform;

/// <summary>
/// The x86-64 general registers in the layout of Linux's <c>struct user_regs_struct</c>
/// (what PTRACE_GETREGS returns), including the FS and GS bases.
/// </summary>
[StructLayout(LayoutKind.Sequential)]
public struct Registers
{
#pragma warning disable CS1591 // Register names are the architecture's own.
    public ulong R15, R14, R13, R12, Rbp, Rbx, R11, R10, R9, R8, Rax, Rcx, Rdx, Rsi, Rdi;
    /// <summary>The syscall number at a syscall stop (<c>rax</c> before the call).</summary>
    public ulong OrigRax;
    public ulong Rip, Cs, Eflags, Rsp, Ss, FsBase, GsBase, Ds, Es, Fs, Gs;
#pragma warning restore CS1591
}

/// <summary>
/// The CPU state of one program thread: general registers, plus the FP/SSE/AVX state
/// as an XSAVE image, which is loaded only when the Sentry needs it (signal delivery, ptrace).
/// </summary>
public sealed class CpuState
{
    /// <summary>The general registers.</summary>
    public Registers Registers;

    /// <summary>Creates a state with an extended-state buffer of <paramref name="extendedStateSize"/> bytes.</summary>
    public CpuState(int extendedStateSize)
    {
        ExtendedState = new byte[extendedStateSize];
    }

    /// <summary>The XSAVE image of the FP/SSE/AVX state; valid after <see cref="IExecutionContext.LoadExtendedState"/>.</summary>
    public byte[] ExtendedState { get; }

    /// <summary>Set by the Sentry after changing <see cref="ExtendedState"/>; the platform writes it back before running and clears the flag.</summary>
    public bool ExtendedStateDirty { get; set; }

    /// <summary>The syscall argument registers in order (rdi, rsi, rdx, r10, r8, r9).</summary>
    public ulong SyscallArgument(int index) => index switch
    {
        0 => Registers.Rdi,
        1 => Registers.Rsi,
        2 => Registers.Rdx,
        3 => Registers.R10,
        4 => Registers.R8,
        5 => Registers.R9,
        _ => throw new ArgumentOutOfRangeException(nameof(index)),
    };

    /// <summary>Copies the general registers and extended state of <paramref name="other"/> (fork, clone).</summary>
    public void CopyFrom(CpuState other)
    {
        Registers = other.Registers;
        other.ExtendedState.AsSpan().CopyTo(ExtendedState);
        ExtendedStateDirty = true;
    }
}
