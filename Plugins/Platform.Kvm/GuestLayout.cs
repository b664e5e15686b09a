namespace AppKernel.Platform.Kvm;

/// <summary>
/// Where things are in the guest. Guest-physical: the memory file at 0 (offset = address, registered in
/// 1 GiB slots as it is used), the platform's own region at <see cref="PlatformGpa"/>. Guest-virtual: the
/// program below <see cref="SupervisorBase"/>, the supervisor half (trampoline, vCPU pages, page tables,
/// all through one linear map of the platform region, never user-accessible) in the last 512 GiB of the
/// lower half, where PVM confines a guest's supervisor code.
/// </summary>
internal static class GuestLayout
{
    public const int PageSize = 4096;
    public const ulong LargePageSize = 2UL << 20;

    /// <summary>The PML4 slot of the supervisor half; every address space shares its PDPT.</summary>
    public const int SupervisorPml4Index = 255;

    /// <summary>The first supervisor address: programs get everything below it.</summary>
    public const ulong SupervisorBase = (ulong)SupervisorPml4Index << 39;

    /// <summary>Guest-physical base of the platform region (32 TiB); the memory file may use everything below.</summary>
    public const ulong PlatformGpa = 1UL << 40;

    /// <summary>The platform region's size: reserved host address space, touched as pages are used.</summary>
    public const ulong PlatformSize = 1UL << 30;

    /// <summary>The memory file is registered with KVM in slots of this size, when a mapping first reaches them.</summary>
    public const ulong MemoryFileSlotSize = 1UL << 30;

    /// <summary>The trampoline's code: the first large page of the region, the only executable one.</summary>
    public const ulong CodeOffset = 0;

    /// <summary>The supervisor half's shared page-directory-pointer table.</summary>
    public const ulong KernelPdptOffset = LargePageSize;

    /// <summary>The supervisor half's shared page directory: 2 MiB pages mapping the whole region.</summary>
    public const ulong KernelPdOffset = LargePageSize + PageSize;

    /// <summary>The page-table root of the service vCPU: the supervisor half and nothing else.</summary>
    public const ulong KernelRootOffset = LargePageSize + (2 * PageSize);

    /// <summary>The interrupt descriptor table every vCPU shares (its handlers find their vCPU from the stack).</summary>
    public const ulong IdtOffset = LargePageSize + (3 * PageSize);

    /// <summary>Per-vCPU syscall entry stubs, 64 bytes each, in the code page.</summary>
    public const ulong SyscallStubsOffset = 0x1_0000;
    public const int SyscallStubSize = 64;

    /// <summary>The first page the region's allocator hands out.</summary>
    public const ulong FirstFreeOffset = LargePageSize + (4 * PageSize);

    public static ulong VirtualOf(ulong platformOffset) => SupervisorBase + platformOffset;

    public static ulong PhysicalOf(ulong platformOffset) => PlatformGpa + platformOffset;

    /// <summary>Page-table entry bits.</summary>
    public const ulong Present = 1, Writable = 2, User = 4, LargePage = 0x80, NoExecute = 1UL << 63;

    /// <summary>A software bit (ignored by the CPU): the entry maps memory, even if not present (PROT_NONE).</summary>
    public const ulong Mapped = 1UL << 9;

    public const ulong AddressMask = 0x000F_FFFF_FFFF_F000;
}

/// <summary>
/// The per-vCPU page: the program's registers (in <see cref="Registers"/> layout) at <see cref="Registers"/>,
/// exit and command words, this vCPU's GDT and TSS, the list of page-table entries to touch. The page after
/// it is the vCPU's stack, so the trampoline finds the page from its stack pointer; the Sentry reaches it
/// through the host mapping, with no ioctl.
/// </summary>
internal static class VcpuPage
{
    /// <summary>The program's registers, laid out as <see cref="AppKernel.Platform.Registers"/>.</summary>
    public const int Registers = 0x100;

    public const int R15 = Registers + 0, R14 = Registers + 8, R13 = Registers + 16, R12 = Registers + 24;
    public const int Rbp = Registers + 32, Rbx = Registers + 40, R11 = Registers + 48, R10 = Registers + 56;
    public const int R9 = Registers + 64, R8 = Registers + 72, Rax = Registers + 80, Rcx = Registers + 88;
    public const int Rdx = Registers + 96, Rsi = Registers + 104, Rdi = Registers + 112, OrigRax = Registers + 120;
    public const int Rip = Registers + 128, Eflags = Registers + 144, Rsp = Registers + 152;
    public const int FsBase = Registers + 168, GsBase = Registers + 176;

    /// <summary>Why the trampoline stopped: an exception vector, <see cref="ExitSyscall"/>, or <see cref="ExitKernelFault"/>.</summary>
    public const int Exit = 0x200;
    public const int ErrorCode = 0x204;
    public const int Cr2 = 0x208;

    /// <summary>1 while the vCPU sits at the exit instruction (nothing of the program's state is live in registers).</summary>
    public const int Phase = 0x210;

    /// <summary>0: return to the program; 1: do the work below, then stop again.</summary>
    public const int Command = 0x214;
    public const int FlushTlb = 0x218;
    public const int TouchCount = 0x21C;
    public const int KernelStackTop = 0x220;
    public const int FpuStatus = 0x228;
    public const int FpuControl = 0x22A;
    public const int Mxcsr = 0x22C;
    public const int Self = 0x230;
    public const int LoadCr3 = 0x238;
    public const int Cr3 = 0x240;
    public const int KernelFaultRip = 0x248;
    public const int KernelFaultVector = 0x250;

    /// <summary>Nonzero: return with iretq (RCX and R11 restored exactly) rather than sysretq.</summary>
    public const int UseIret = 0x258;

    /// <summary>This vCPU's GDT (Linux's selectors: 0x10 kernel code, 0x18 kernel data, 0x2b user data, 0x33 user code, 0x40 TSS).</summary>
    public const int Gdt = 0x800;
    public const int GdtLimit = (10 * 8) - 1;

    /// <summary>This vCPU's TSS (RSP0 and IST1 are the stack top).</summary>
    public const int Tss = 0x900;

    /// <summary>The stack occupies the page after this one; its top is this far from the page start.</summary>
    public const int StackTop = 2 * GuestLayout.PageSize;

    /// <summary>Runs of page-table entries to rewrite in place (address, count of 8-byte entries).</summary>
    public const int Touches = 0xA00;
    public const int MaxTouches = (GuestLayout.PageSize - Touches) / 16;

    public const uint ExitSyscall = 0x100;
    public const uint ExitKernelFault = 0x200;

    /// <summary>The vector of the interrupt KVM injects to pull a running program into the trampoline.</summary>
    public const uint KickVector = 0x40;
}
