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

    /// <summary>The page directory of the supervisor half's second GiB, where the syscall page is mapped.</summary>
    public const ulong SyscallPdOffset = LargePageSize + (4 * PageSize);

    /// <summary>The page table that maps the syscall page.</summary>
    public const ulong SyscallPtOffset = LargePageSize + (5 * PageSize);

    /// <summary>
    /// The syscall page: the only user-accessible page of the supervisor half (user, read and execute),
    /// at <see cref="SyscallPageAddress"/>. It holds <c>out SyscallPort, al</c> at MSR_LSTAR and the
    /// probe's <c>syscall</c>, nothing else (see <see cref="Trampoline.SyscallPage"/>).
    /// </summary>
    public const ulong SyscallPageOffset = LargePageSize + (6 * PageSize);

    /// <summary>The guest-virtual address of the syscall page: the first page of the supervisor half's second GiB.</summary>
    public const ulong SyscallPageAddress = SupervisorBase + (1UL << 30);

    /// <summary>The I/O port the syscall page's <c>out</c> uses; the only port the TSS lets ring 3 use (fast syscalls only).</summary>
    public const ushort SyscallPort = 0x80;

    /// <summary>The first page the region's allocator hands out.</summary>
    public const ulong FirstFreeOffset = LargePageSize + (7 * PageSize);

    public static ulong VirtualOf(ulong platformOffset) => SupervisorBase + platformOffset;

    public static ulong PhysicalOf(ulong platformOffset) => PlatformGpa + platformOffset;

    /// <summary>Page-table entry bits.</summary>
    public const ulong Present = 1, Writable = 2, User = 4, LargePage = 0x80, NoExecute = 1UL << 63;

    /// <summary>
    /// The accessed and dirty bits, set from the start on every entry the Sentry writes: nothing reads
    /// them, and a shadow-paging hypervisor would otherwise take a fault to set each one (the first
    /// read of a page, the first write of a writable one), and fills only entries already marked
    /// accessed ahead of a fault (KVM's prefetch of neighbouring entries).
    /// </summary>
    public const ulong Accessed = 0x20, Dirty = 0x40;

    /// <summary>A software bit (ignored by the CPU): the entry maps memory, even if not present (PROT_NONE).</summary>
    public const ulong Mapped = 1UL << 9;

    public const ulong AddressMask = 0x000F_FFFF_FFFF_F000;
}

/// <summary>
/// The per-vCPU page: this vCPU's GDT and TSS, the CR3 its next return loads, and the list of
/// page-table entries the service vCPU rewrites. The page after it is the vCPU's stack (IST1), where the
/// CPU leaves the exception frame the Sentry reads, so ring-0 code finds the page from its stack pointer.
/// </summary>
internal static class VcpuPage
{
    /// <summary>The page-table root the next return through FlushAndReturn loads.</summary>
    public const int Cr3 = 0x240;

    /// <summary>Nonzero: a root switch is pending (the next return goes through FlushAndReturn).</summary>
    public const int LoadCr3 = 0x238;

    /// <summary>Number of runs in <see cref="Touches"/> for the service work.</summary>
    public const int TouchCount = 0x21C;

    /// <summary>This vCPU's GDT (Linux's selectors: 0x10 kernel code, 0x18 kernel data, 0x2b user data, 0x33 user code, 0x40 TSS).</summary>
    public const int Gdt = 0x800;
    public const int GdtLimit = (10 * 8) - 1;

    /// <summary>This vCPU's TSS (RSP0 and IST1 are the stack top), followed by its I/O permission bitmap.</summary>
    public const int Tss = 0x900;

    /// <summary>The TSS limit: the 104-byte TSS, a bitmap for ports 0-255 and the terminating byte.</summary>
    public const int TssLimit = 104 + 32;

    /// <summary>The stack occupies the page after this one; its top is this far from the page start.</summary>
    public const int StackTop = 2 * GuestLayout.PageSize;

    /// <summary>Runs of page-table entries to rewrite in place (address, count of 8-byte entries).</summary>
    public const int Touches = 0xA00;
    public const int MaxTouches = (GuestLayout.PageSize - Touches) / 16;

    /// <summary>The vector of the interrupt KVM injects to pull a running program into ring 0.</summary>
    public const uint KickVector = 0x40;
}
