using System.Runtime.InteropServices;

namespace AppKernel.Platform.Kvm.Native;

/// <summary>
/// The KVM ABI the platform uses (x86-64), written from the documented layout of
/// <c>linux/kvm.h</c> and <c>asm/kvm.h</c>: ioctl numbers, capabilities, exit reasons, structs.
/// </summary>
internal static class KvmAbi
{
    public const int ApiVersion = 12;

    // ioctl numbers: _IO(0xAE, nr) = 0xAE00 | nr; _IOR/_IOW/_IOWR add direction (2/1/3 << 30) and size << 16.
    private const uint Io = 0xAE00;
    private static nuint Ior(uint nr, int size) => (nuint)((2u << 30) | ((uint)size << 16) | Io | nr);
    private static nuint Iow(uint nr, int size) => (nuint)((1u << 30) | ((uint)size << 16) | Io | nr);
    private static nuint Iowr(uint nr, int size) => (nuint)((3u << 30) | ((uint)size << 16) | Io | nr);

    public static readonly nuint GetApiVersion = Io | 0x00;
    public static readonly nuint CreateVm = Io | 0x01;
    public static readonly nuint CheckExtension = Io | 0x03;
    public static readonly nuint GetVcpuMmapSize = Io | 0x04;
    public static readonly nuint GetSupportedCpuid = Iowr(0x05, 8);
    public static readonly nuint CreateVcpu = Io | 0x41;
    public static readonly nuint SetUserMemoryRegion = Iow(0x46, 32);
    public static readonly nuint Run = Io | 0x80;
    public static readonly nuint GetRegs = Ior(0x81, 144);
    public static readonly nuint SetRegs = Iow(0x82, 144);
    public static readonly nuint GetSregs = Ior(0x83, 312);
    public static readonly nuint SetSregs = Iow(0x84, 312);
    public static readonly nuint Interrupt = Iow(0x86, 4);
    public static readonly nuint GetMsrs = Iowr(0x88, 8);
    public static readonly nuint SetMsrs = Iow(0x89, 8);
    public static readonly nuint SetCpuid2 = Iow(0x90, 8);
    public static readonly nuint GetXsave = Ior(0xA4, 4096);
    public static readonly nuint SetXsave = Iow(0xA5, 4096);
    public static readonly nuint GetXcrs = Ior(0xA6, 392);
    public static readonly nuint SetXcrs = Iow(0xA7, 392);
    public static readonly nuint GetXsave2 = Ior(0xCF, 4096);

    // Capabilities (KVM_CHECK_EXTENSION).
    public const int CapUserMemory = 3;
    public const int CapNrMemslots = 10;
    public const int CapXsave = 55;
    public const int CapXcrs = 56;
    public const int CapImmediateExit = 136;
    public const int CapXsave2 = 208;
    public const int CapSyncRegs = 74;
    public const ulong SyncRegsGeneral = 1;

    // Exit reasons (kvm_run.exit_reason).
    public const uint ExitUnknown = 0;
    public const uint ExitException = 1;
    public const uint ExitIo = 2;
    public const uint ExitHypercall = 3;
    public const uint ExitDebug = 4;
    public const uint ExitHlt = 5;
    public const uint ExitMmio = 6;
    public const uint ExitIrqWindowOpen = 7;
    public const uint ExitShutdown = 8;
    public const uint ExitFailEntry = 9;
    public const uint ExitIntr = 10;
    public const uint ExitInternalError = 17;

    // MSRs.
    public const uint MsrEfer = 0xC000_0080;
    public const uint MsrStar = 0xC000_0081;
    public const uint MsrLstar = 0xC000_0082;
    public const uint MsrCstar = 0xC000_0083;
    public const uint MsrSyscallMask = 0xC000_0084;
    public const uint MsrFsBase = 0xC000_0100;
    public const uint MsrGsBase = 0xC000_0101;
    public const uint MsrKernelGsBase = 0xC000_0102;
}

/// <summary><c>struct kvm_run</c>: the header, the exit union at 32 and the sync-regs area at 304.</summary>
[StructLayout(LayoutKind.Explicit, Size = 304 + 144)]
internal struct KvmRun
{
    [FieldOffset(0)] public byte RequestInterruptWindow;
    [FieldOffset(1)] public byte ImmediateExit;
    [FieldOffset(8)] public uint ExitReason;
    [FieldOffset(12)] public byte ReadyForInterruptInjection;
    [FieldOffset(13)] public byte IfFlag;
    [FieldOffset(14)] public ushort Flags;
    [FieldOffset(16)] public ulong Cr8;
    [FieldOffset(24)] public ulong ApicBase;

    // The exit union (256 bytes): read through these overlapping views.
    [FieldOffset(32)] public ulong Exit0;
    [FieldOffset(40)] public ulong Exit1;
    [FieldOffset(48)] public ulong Exit2;
    [FieldOffset(56)] public ulong Exit3;

    /// <summary>KVM_SYNC_X86_* fields KVM copies into <see cref="Regs"/> on every exit.</summary>
    [FieldOffset(288)] public ulong ValidRegs;

    /// <summary>KVM_SYNC_X86_* fields KVM loads from <see cref="Regs"/> on the next entry.</summary>
    [FieldOffset(296)] public ulong DirtyRegs;

    /// <summary><c>s.regs.regs</c>: the general registers (KVM_CAP_SYNC_REGS).</summary>
    [FieldOffset(304)] public KvmRegs Regs;
}

/// <summary><c>struct kvm_userspace_memory_region</c>.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct KvmUserspaceMemoryRegion
{
    public uint Slot;
    public uint Flags;
    public ulong GuestPhysAddr;
    public ulong MemorySize;
    public ulong UserspaceAddr;
}

/// <summary><c>struct kvm_regs</c>.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct KvmRegs
{
    public ulong Rax, Rbx, Rcx, Rdx, Rsi, Rdi, Rsp, Rbp;
    public ulong R8, R9, R10, R11, R12, R13, R14, R15;
    public ulong Rip, Rflags;
}

/// <summary><c>struct kvm_segment</c>.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct KvmSegment
{
    public ulong Base;
    public uint Limit;
    public ushort Selector;
    public byte Type, Present, Dpl, Db, S, L, G, Avl, Unusable, Padding;
}

/// <summary><c>struct kvm_dtable</c>.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct KvmDtable
{
    public ulong Base;
    public ushort Limit;
    public ushort Padding0, Padding1, Padding2;
}

/// <summary><c>struct kvm_sregs</c> (312 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct KvmSregs
{
    public KvmSegment Cs, Ds, Es, Fs, Gs, Ss, Tr, Ldt;
    public KvmDtable Gdt, Idt;
    public ulong Cr0, Cr2, Cr3, Cr4, Cr8, Efer, ApicBase;
    public fixed ulong InterruptBitmap[4];
}

/// <summary>One <c>struct kvm_msr_entry</c>.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct KvmMsrEntry
{
    public uint Index;
    public uint Reserved;
    public ulong Data;
}

/// <summary>One <c>struct kvm_cpuid_entry2</c> (40 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct KvmCpuidEntry2
{
    public uint Function, Index, Flags, Eax, Ebx, Ecx, Edx;
    public uint Padding0, Padding1, Padding2;
}

/// <summary><c>struct kvm_xcrs</c> (392 bytes).</summary>
[StructLayout(LayoutKind.Sequential, Size = 392)]
internal struct KvmXcrs
{
    public uint NrXcrs;
    public uint Flags;
    public uint Xcr0Index;
    public uint Reserved;
    public ulong Xcr0Value;
}
