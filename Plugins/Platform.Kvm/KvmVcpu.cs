using System.Runtime.InteropServices;
using AppKernel.Platform.Kvm.Native;
using static AppKernel.Platform.Kvm.GuestLayout;

namespace AppKernel.Platform.Kvm;

/// <summary>
/// One KVM vCPU: its file descriptor, its <c>kvm_run</c> mapping (with sync regs on), and its page in the
/// platform region (GDT, TSS, CR3 to load, touch list) plus a stack page (IST1, where exception frames land).
/// </summary>
internal sealed unsafe class KvmVcpu : IDisposable
{
    private readonly KvmMachine machine;
    private readonly nint runMapping;
    private readonly int runSize;
    private int disposed;

    public KvmVcpu(KvmMachine machine, int id)
    {
        this.machine = machine;
        Id = id;
        Fd = machine.Platform.Check(LibC.Ioctl(machine.VmFd, KvmAbi.CreateVcpu, id), "KVM_CREATE_VCPU");
        try
        {
            runSize = machine.Platform.VcpuMmapSize;
            runMapping = LibC.Mmap(0, (nuint)runSize, LibC.PROT_READ | LibC.PROT_WRITE, LibC.MAP_SHARED, Fd, 0);
            if (runMapping == LibC.MapFailed)
            {
                throw new InvalidOperationException($"mmap of the kvm_run area failed: {LibC.Describe(LibC.Errno)}");
            }

            Run = (KvmRun*)runMapping;
            PageOffset = machine.AllocatePages(2);
            Page = machine.Host(PageOffset);
            PageAddress = VirtualOf(PageOffset);
            Setup();
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public int Id { get; }

    public int Fd { get; }

    public KvmRun* Run { get; }

    /// <summary>The host address of the vCPU page.</summary>
    public byte* Page { get; }

    public ulong PageOffset { get; }

    /// <summary>The supervisor address of the vCPU page.</summary>
    public ulong PageAddress { get; }

    public KvmMachine Machine => machine;

    /// <summary>The FS and GS bases last written to the vCPU (the program's, as far as the Sentry knows).</summary>
    public ulong FsBase, GsBase;

    /// <summary>
    /// The vCPU stopped in user mode (a fast-path syscall, see <see cref="KvmMachine.UserModeSyscalls"/>):
    /// the program resumes by KVM_RUN with its registers in sync regs, no ring-0 code on the way. False
    /// when it stopped in the trampoline (ring 0).
    /// </summary>
    public bool InUserMode;

    /// <summary>The last exit was an I/O exit whose completion the next KVM_RUN carries out (see <see cref="CompletePendingIo"/>).</summary>
    public bool IoPending;

    /// <summary>The page-table root (guest-physical) the vCPU runs on, or loads at its next resume.</summary>
    public ulong Root { get; private set; }

    public ref uint Word(int offset) => ref *(uint*)(Page + offset);

    public ref ulong Quad(int offset) => ref *(ulong*)(Page + offset);

    /// <summary>Asks the trampoline to load <paramref name="root"/> (with a TLB flush) when it next resumes.</summary>
    public void SwitchRoot(ulong root)
    {
        if (root == Root)
        {
            return;
        }

        Quad(VcpuPage.Cr3) = root;
        Word(VcpuPage.LoadCr3) = 1;
        Root = root;
    }

    /// <summary>
    /// Loads <paramref name="root"/> into CR3 at once, from outside the guest (KVM_SET_SREGS), and drops any
    /// pending switch. Used when a vCPU goes back to the pool: its CR3 must not keep naming a root whose
    /// address space is about to be disposed, because that page is then reused (as another table, zeroed
    /// behind the hypervisor's back), and the vCPU's next entry would run on it: the trampoline would not
    /// even be mapped, and the first fetch would triple-fault the guest.
    /// </summary>
    /// <remarks>A vCPU stopped in user mode is put in ring 0 as well, so that pooled vCPUs are all alike.</remarks>
    public void LoadRoot(ulong root)
    {
        var platform = machine.Platform;
        CompletePendingIo();
        KvmSregs sregs;
        platform.Check(LibC.IoctlRetry(Fd, KvmAbi.GetSregs, (nint)(&sregs)), "KVM_GET_SREGS");
        if (sregs.Cr3 != root || InUserMode)
        {
            sregs.Cr3 = root;
            sregs.Cs = KernelCode;
            sregs.Ss = KernelData;
            platform.Check(LibC.IoctlRetry(Fd, KvmAbi.SetSregs, (nint)(&sregs)), "KVM_SET_SREGS");
            InUserMode = false;
        }

        Quad(VcpuPage.Cr3) = root;
        Word(VcpuPage.LoadCr3) = 0;
        Root = root;
    }

    /// <summary>
    /// Puts a vCPU that stopped in user mode into ring 0 (CS and SS of the kernel, KVM_SET_SREGS), so that
    /// it can resume through the trampoline's return entries (an address-space switch or TLB flush needs
    /// ring 0). Its registers are then loaded as for any stop in the trampoline.
    /// </summary>
    public void EnterSupervisor()
    {
        if (!InUserMode)
        {
            return;
        }

        var platform = machine.Platform;
        CompletePendingIo();
        KvmSregs sregs;
        platform.Check(LibC.IoctlRetry(Fd, KvmAbi.GetSregs, (nint)(&sregs)), "KVM_GET_SREGS");
        sregs.Cs = KernelCode;
        sregs.Ss = KernelData;
        platform.Check(LibC.IoctlRetry(Fd, KvmAbi.SetSregs, (nint)(&sregs)), "KVM_SET_SREGS");
        InUserMode = false;
    }

    /// <summary>
    /// Lets KVM finish the last I/O exit (a KVM_RUN with <c>immediate_exit</c>, which completes it and
    /// returns at once) before state changes that KVM documents as needing it (KVM_SET_SREGS).
    /// </summary>
    public void CompletePendingIo()
    {
        if (!IoPending)
        {
            return;
        }

        var run = Run;
        ulong dirty = run->DirtyRegs;
        run->DirtyRegs = 0;
        run->ImmediateExit = 1;
        int result = RunOnce();
        run->ImmediateExit = 0;
        run->DirtyRegs = dirty;
        IoPending = false;
        if (result != -LibC.EINTR)
        {
            machine.Platform.Check(result, "KVM_RUN (I/O completion)");
        }
    }

    /// <summary>
    /// Runs a <c>syscall</c> in user mode once (the syscall page's probe instruction, on this vCPU's
    /// freshly set-up state) and says whether it stopped at the syscall page's <c>out</c> still in user
    /// mode (true), in ring 0 (false), or somewhere unexpected (null: the vCPU should not be used).
    /// </summary>
    public bool? ProbeUserModeSyscall()
    {
        var platform = machine.Platform;
        var run = Run;
        ulong frame = StackTop - 40;
        var f = (ulong*)machine.Host(frame - SupervisorBase);
        f[0] = SyscallPageAddress + Trampoline.SyscallProbe;
        f[1] = 0x33;
        f[2] = 0x202;
        f[3] = 0;
        f[4] = 0x2b;
        run->Regs = new KvmRegs { Rip = Code(machine.Image.Return), Rsp = frame, Rflags = 2 };
        run->DirtyRegs = KvmAbi.SyncRegsGeneral;
        int result;
        do
        {
            run->ImmediateExit = 0;
            result = RunOnce();
        }
        while (result == -LibC.EINTR);

        platform.Check(result, "KVM_RUN (syscall probe)");
        if (run->ExitReason != KvmAbi.ExitIo || run->Regs.Rip != SyscallPageAddress + 2)
        {
            return run->ExitReason == KvmAbi.ExitHlt ? false : null;
        }

        IoPending = true;
        KvmSregs sregs;
        platform.Check(LibC.IoctlRetry(Fd, KvmAbi.GetSregs, (nint)(&sregs)), "KVM_GET_SREGS");
        bool user = sregs.Cs.Dpl == 3 && (sregs.Cs.Selector & 3) == 3;
        InUserMode = user;
        if (!user)
        {
            CompletePendingIo();
        }

        return user;
    }

    /// <summary>
    /// Points MSR_LSTAR at the syscall page (fast path) or at the trampoline's ring-0 stop, with the SFMASK
    /// and TSS I/O permission bitmap that go with it.
    /// </summary>
    public void SetSyscallMode(bool fast)
    {
        byte* bitmap = Page + VcpuPage.Tss + 104;
        new Span<byte>(bitmap, VcpuPage.TssLimit + 1 - 104).Fill(0xFF);
        if (fast)
        {
            bitmap[SyscallPort / 8] &= (byte)(0xFF & ~(1 << (SyscallPort % 8)));
        }

        Span<KvmMsrEntry> msrs =
        [
            new() { Index = KvmAbi.MsrLstar, Data = fast ? SyscallPageAddress : Code(machine.Image.SyscallStop) },
            // Cleared on syscall: TF, DF, IOPL, NT, AC, and IF when syscalls stop in ring 0. The fast path
            // keeps IF: the program stays in user mode, where an interrupt must be deliverable.
            new() { Index = KvmAbi.MsrSyscallMask, Data = fast ? 0x4_7500UL : 0x4_7700UL },
        ];
        machine.Platform.SetMsrs(Fd, msrs);
    }

    /// <summary>The ring-0 code segment (selector 0x10, 64-bit).</summary>
    private static KvmSegment KernelCode => new() { Limit = 0xFFFF_FFFF, Selector = 0x10, Type = 0xB, Present = 1, S = 1, L = 1, G = 1 };

    /// <summary>The ring-0 stack segment (selector 0x18).</summary>
    private static KvmSegment KernelData => new() { Limit = 0xFFFF_FFFF, Selector = 0x18, Type = 0x3, Present = 1, Db = 1, S = 1, G = 1 };

    /// <summary>KVM_RUN once; returns 0 or -errno.</summary>
    public int RunOnce()
    {
        int result = LibC.Ioctl(Fd, KvmAbi.Run, 0);
        return result < 0 ? -LibC.Errno : 0;
    }

    /// <summary>The supervisor address of the top of this vCPU's stack (IST1).</summary>
    public ulong StackTop => PageAddress + VcpuPage.StackTop;

    /// <summary>The supervisor address of a trampoline entry point.</summary>
    public ulong Code(int offset) => VirtualOf(CodeOffset) + (ulong)offset;

    /// <summary>Runs the trampoline's page-table work (the touch list in the vCPU page) and waits until it stops.</summary>
    public void RunWork() => RunAt(machine.Image.Work);

    /// <summary>Enters the guest at a bare <c>hlt</c>: the cost of one exit and nothing else.</summary>
    public void RunBare() => RunAt(machine.Image.Halt);

    private void RunAt(int entry)
    {
        EnterSupervisor();
        var run = Run;
        run->Regs = new KvmRegs { Rip = Code(entry), Rsp = StackTop, Rflags = 2 };
        run->DirtyRegs = KvmAbi.SyncRegsGeneral;
        while (true)
        {
            int result = RunOnce();
            if (result == -LibC.EINTR)
            {
                run->ImmediateExit = 0;
                continue;
            }

            machine.Platform.Check(result, "KVM_RUN");
            if (run->ExitReason != KvmAbi.ExitHlt || run->Regs.Rip != Code(machine.Image.Halt) + 1)
            {
                throw UnexpectedExit();
            }

            return;
        }
    }

    /// <summary>The error for an exit the trampoline never causes on purpose.</summary>
    public Exception UnexpectedExit()
    {
        var run = Run;
        string detail = run->ExitReason switch
        {
            KvmAbi.ExitShutdown => "the guest shut down (a triple fault)",
            KvmAbi.ExitInternalError => $"KVM internal error, suberror {(uint)run->Exit0}",
            KvmAbi.ExitFailEntry => $"VM entry failed, reason 0x{run->Exit0:x}",
            KvmAbi.ExitMmio => $"an access to guest-physical 0x{run->Exit0:x} outside guest memory",
            KvmAbi.ExitException => $"exception {(uint)run->Exit0}, error code 0x{run->Exit0 >> 32:x}",
            _ => $"exit reason {run->ExitReason}",
        };
        var regs = run->Regs;
        string where = $"guest rip 0x{regs.Rip:x}, rsp 0x{regs.Rsp:x}, rflags 0x{regs.Rflags:x}";
        if (run->ExitReason == KvmAbi.ExitInternalError)
        {
            where += $", data 0x{run->Exit1:x} 0x{run->Exit2:x} 0x{run->Exit3:x}";
        }

        return new InvalidOperationException($"KVM vCPU {Id} stopped unexpectedly: {detail} ({where})");
    }

    public Exception KernelFault(int vector, ulong rip, ulong error) => new InvalidOperationException(
        $"the KVM trampoline faulted on vCPU {Id}: vector {vector} at 0x{rip:x}, error code 0x{error:x}");

    public void Dispose()
    {
        if (Interlocked.Exchange(ref disposed, 1) != 0)
        {
            return;
        }

        if (runMapping != 0 && runMapping != LibC.MapFailed)
        {
            LibC.Munmap(runMapping, (nuint)runSize);
        }

        if (Fd > 0)
        {
            LibC.Close(Fd);
        }
    }

    /// <summary>CPUID; this vCPU's GDT and TSS; long mode in ring 0, stopped at a hlt; MSRs; XCR0; sync regs.</summary>
    private void Setup()
    {
        var platform = machine.Platform;
        platform.SetCpuid(Fd);
        var image = machine.Image;

        // GDT: Linux's layout, so the program sees its usual selectors (0x33 code, 0x2b data).
        var gdt = (ulong*)(Page + VcpuPage.Gdt);
        gdt[2] = 0x00AF_9A00_0000_FFFF; // 0x10 kernel code, 64-bit
        gdt[3] = 0x00CF_9200_0000_FFFF; // 0x18 kernel data
        gdt[4] = 0x00CF_FA00_0000_FFFF; // 0x23 user code, 32-bit (sysret's base selector)
        gdt[5] = 0x00CF_F200_0000_FFFF; // 0x2b user data
        gdt[6] = 0x00AF_FA00_0000_FFFF; // 0x33 user code, 64-bit
        ulong tss = PageAddress + VcpuPage.Tss;
        gdt[8] = (ulong)VcpuPage.TssLimit | ((tss & 0xFF_FFFF) << 16) | (0x89UL << 40) | (((tss >> 24) & 0xFF) << 56);
        gdt[9] = tss >> 32;

        // TSS: RSP0 and IST1 are this vCPU's stack top; the I/O permission bitmap follows it (SetSyscallMode).
        byte* t = Page + VcpuPage.Tss;
        ulong stackTop = PageAddress + VcpuPage.StackTop;
        *(ulong*)(t + 4) = stackTop;
        *(ulong*)(t + 36) = stackTop;
        *(ushort*)(t + 102) = 104;

        KvmSregs sregs;
        platform.Check(LibC.IoctlRetry(Fd, KvmAbi.GetSregs, (nint)(&sregs)), "KVM_GET_SREGS");
        sregs.Cs = KernelCode;
        sregs.Ss = KernelData;
        var nul = new KvmSegment { Unusable = 1 };
        sregs.Ds = nul;
        sregs.Es = nul;
        sregs.Fs = nul;
        sregs.Gs = nul;
        sregs.Tr = new KvmSegment { Base = tss, Limit = VcpuPage.TssLimit, Selector = 0x40, Type = 0xB, Present = 1 };
        sregs.Ldt = new KvmSegment { Unusable = 1, Type = 2 };
        sregs.Gdt = new KvmDtable { Base = PageAddress + VcpuPage.Gdt, Limit = VcpuPage.GdtLimit };
        sregs.Idt = new KvmDtable { Base = VirtualOf(IdtOffset), Limit = 0xFFF };
        sregs.Cr0 = 0x8005_0033; // PG, AM, WP, NE, ET, MP, PE
        sregs.Cr4 = 0x20 | 0x200 | 0x400 | 0x1_0000 | 0x4_0000; // PAE, OSFXSR, OSXMMEXCPT, FSGSBASE, OSXSAVE
        sregs.Efer = 0x1 | 0x100 | 0x400 | 0x800; // SCE, LME, LMA, NXE
        sregs.Cr3 = PhysicalOf(KernelRootOffset);
        Root = sregs.Cr3;
        platform.Check(LibC.IoctlRetry(Fd, KvmAbi.SetSregs, (nint)(&sregs)), "KVM_SET_SREGS");

        Span<KvmMsrEntry> msrs =
        [
            // syscall: CS 0x10, SS 0x18; sysret: CS 0x23 + 16 = 0x33, SS 0x23 + 8 = 0x2b.
            new() { Index = KvmAbi.MsrStar, Data = (0x10UL << 32) | (0x23UL << 48) },
        ];
        platform.SetMsrs(Fd, msrs);
        SetSyscallMode(machine.UserModeSyscalls);

        var regs = new KvmRegs { Rip = Code(image.Halt), Rsp = stackTop, Rflags = 2 };
        platform.Check(LibC.IoctlRetry(Fd, KvmAbi.SetRegs, (nint)(&regs)), "KVM_SET_REGS");

        Run->ValidRegs = KvmAbi.SyncRegsGeneral;
        var xcrs = new KvmXcrs { NrXcrs = 1, Xcr0Index = 0, Xcr0Value = platform.GuestXcr0 };
        platform.Check(LibC.IoctlRetry(Fd, KvmAbi.SetXcrs, (nint)(&xcrs)), "KVM_SET_XCRS");
    }
}
