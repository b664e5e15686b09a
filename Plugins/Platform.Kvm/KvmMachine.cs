using AppKernel.Memory;
using AppKernel.Platform.Kvm.Native;
using static AppKernel.Platform.Kvm.GuestLayout;

namespace AppKernel.Platform.Kvm;

/// <summary>
/// One KVM virtual machine per memory file (that is, per sandbox): the memory file as guest-physical
/// memory from 0, the platform region (trampoline, vCPU pages, page tables) at <see cref="PlatformGpa"/>,
/// a pool of vCPUs, and a service vCPU that carries out page-table work for threads that have none.
/// Address spaces of the same sandbox (processes, fork) are page-table roots inside it.
/// </summary>
internal sealed unsafe class KvmMachine : IDisposable
{
    private readonly object gate = new();
    private readonly object serviceGate = new();
    private readonly HashSet<ulong> registeredSlots = [];
    private readonly Stack<ulong> freePages = new();
    private readonly Stack<KvmVcpu> idleVcpus = new();
    private List<ulong> quarantine = [];
    private TouchList quarantineTouches = new();
    private readonly List<KvmVcpu> allVcpus = [];
    private readonly nint region;
    private ulong nextFree = FirstFreeOffset;
    private int nextVcpuId;
    private KvmVcpu? service;
    private int references;
    private bool disposed;

    /// <summary>How many page-table pages of disposed address spaces wait before their entries are rewritten (16 MiB).</summary>
    public const int QuarantineLimit = 4096;

    public KvmMachine(KvmPlatform platform, IMemoryFile memoryFile)
    {
        Platform = platform;
        MemoryFile = memoryFile;
        VmFd = platform.Check(LibC.IoctlRetry(platform.DeviceFd, KvmAbi.CreateVm, 0), "KVM_CREATE_VM");
        try
        {
            region = LibC.Mmap(0, (nuint)PlatformSize, LibC.PROT_READ | LibC.PROT_WRITE,
                LibC.MAP_PRIVATE | LibC.MAP_ANONYMOUS | LibC.MAP_NORESERVE, -1, 0);
            if (region == LibC.MapFailed)
            {
                throw new InvalidOperationException($"reserving the KVM platform region failed: {LibC.Describe(LibC.Errno)}");
            }

            SetSlot(0, PlatformGpa, PlatformSize, (ulong)region);

            // The trampoline, at the start of the first large page (the only executable one).
            Image = Trampoline.Build(VirtualOf(CodeOffset));
            Image.Code.CopyTo(new Span<byte>(Host(CodeOffset), Image.Code.Length));

            // The supervisor half: one PDPT entry, a page directory of 2 MiB pages over the region.
            var pdpt = (ulong*)Host(KernelPdptOffset);
            pdpt[0] = PhysicalOf(KernelPdOffset) | Present | Writable;
            var pd = (ulong*)Host(KernelPdOffset);
            for (ulong i = 0; i < PlatformSize / LargePageSize; i++)
            {
                ulong entry = PhysicalOf(i * LargePageSize) | Present | LargePage;
                pd[i] = i == 0 ? entry : entry | Writable | NoExecute;
            }

            ((ulong*)Host(KernelRootOffset))[SupervisorPml4Index] = SupervisorPml4Entry;

            // The IDT: interrupt gates (IF cleared) on IST1, ring 0 only except #BP and #OF (int3, into).
            var idt = (ulong*)Host(IdtOffset);
            foreach (int vector in Trampoline.HandledVectors)
            {
                ulong handler = VirtualOf(CodeOffset) + (ulong)(Image.Vectors + (vector * Trampoline.VectorStubSize));
                ulong dpl = vector is 3 or 4 ? 3UL : 0UL;
                idt[2 * vector] = (handler & 0xFFFF) | (0x10UL << 16) | (1UL << 32) | ((0x8EUL | (dpl << 5)) << 40) | (((handler >> 16) & 0xFFFF) << 48);
                idt[(2 * vector) + 1] = handler >> 32;
            }

            // The syscall page: the one user-accessible page of the supervisor half (the upper levels let
            // user mode through only on the way to it), read and execute, never writable.
            Trampoline.SyscallPage().CopyTo(new Span<byte>(Host(SyscallPageOffset), PageSize));
            pdpt[1] = PhysicalOf(SyscallPdOffset) | Present | User;
            ((ulong*)Host(SyscallPdOffset))[0] = PhysicalOf(SyscallPtOffset) | Present | User;
            ((ulong*)Host(SyscallPtOffset))[0] = PhysicalOf(SyscallPageOffset) | Present | User;

            // Which way syscalls reach the Sentry: probed once per platform, on this machine's first vCPU.
            UserModeSyscalls = platform.UserModeSyscalls ?? true;
            if (platform.UserModeSyscalls is null)
            {
                platform.UserModeSyscalls = ProbeUserModeSyscalls();
            }
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public KvmPlatform Platform { get; }

    public IMemoryFile MemoryFile { get; }

    public int VmFd { get; }

    public Trampoline.Image Image { get; } = null!;

    /// <summary>
    /// Whether the vCPUs of this machine take syscalls on the fast path: MSR_LSTAR points at the syscall
    /// page's <c>out</c>, which the hypervisor runs in user mode (see <see cref="ProbeUserModeSyscalls"/>).
    /// </summary>
    public bool UserModeSyscalls { get; private set; }

    /// <summary>The PML4 entry every root has for the supervisor half.</summary>
    /// <remarks>User-accessible at this level only so that the syscall page can be: every other leaf of the half is supervisor-only.</remarks>
    public static ulong SupervisorPml4Entry => PhysicalOf(KernelPdptOffset) | Present | Writable | User;

    /// <summary>The host address of a platform-region offset.</summary>
    public byte* Host(ulong offset) => (byte*)region + offset;

    /// <summary>Counts an address space that uses the machine.</summary>
    public void AddReference()
    {
        lock (gate)
        {
            ObjectDisposedException.ThrowIf(disposed, this);
            references++;
        }
    }

    /// <summary>Drops an address space; the last one disposes the machine.</summary>
    public bool Release()
    {
        lock (gate)
        {
            return --references == 0;
        }
    }

    /// <summary>Zeroed pages of the platform region; returns the offset of the first.</summary>
    public ulong AllocatePages(int count)
    {
        lock (gate)
        {
            ulong offset;
            if (count == 1 && freePages.Count > 0)
            {
                offset = freePages.Pop();
            }
            else
            {
                if (nextFree + ((ulong)count * PageSize) > PlatformSize)
                {
                    throw new ErrnoException(Errno.ENOMEM, "the KVM platform region (page tables, vCPU pages) is full");
                }

                offset = nextFree;
                nextFree += (ulong)count * PageSize;
            }

            new Span<byte>(Host(offset), count * PageSize).Clear();
            return offset;
        }
    }

    public void FreePage(ulong offset)
    {
        lock (gate)
        {
            freePages.Push(offset);
        }
    }

    /// <summary>
    /// Takes the page-table pages of a disposed address space, whose entries the Sentry has cleared, with
    /// the entries that were present. Before such a page can become another table, the guest must rewrite
    /// those entries (a shadowing hypervisor keeps its shadow of the page, keyed by the page, until the
    /// guest writes it), and on kvm-pvm each such guest write costs about half a millisecond. So the pages
    /// wait in quarantine and the rewriting is done for many spaces at once, when the quarantine reaches
    /// <see cref="QuarantineLimit"/> pages: a short-lived sandbox never pays it, a long-lived one pays
    /// the same per entry as before, later.
    /// </summary>
    public void Retire(List<ulong> tables, TouchList present)
    {
        TouchList? due = null;
        List<ulong>? pages = null;
        lock (gate)
        {
            quarantine.AddRange(tables);
            for (int i = 0; i < present.Count; i++)
            {
                quarantineTouches.AddRun(present[i]);
            }

            if (quarantine.Count >= QuarantineLimit)
            {
                due = quarantineTouches;
                pages = quarantine;
                quarantineTouches = new TouchList();
                quarantine = [];
            }
        }

        if (due is not null)
        {
            Touch(due);
            lock (gate)
            {
                foreach (ulong page in pages!)
                {
                    freePages.Push(page);
                }
            }
        }
    }

    /// <summary>Registers the 1 GiB slots of the memory file a mapping of [offset, offset+length) reaches.</summary>
    public void EnsureMemoryFileSlots(long offset, long length)
    {
        if (offset < 0 || (ulong)(offset + length) > PlatformGpa)
        {
            throw new ArgumentOutOfRangeException(nameof(offset), $"memory file range 0x{offset:x}+0x{length:x} is beyond what the KVM platform maps (32 TiB)");
        }

        ulong first = (ulong)offset / MemoryFileSlotSize;
        ulong last = ((ulong)(offset + length) - 1) / MemoryFileSlotSize;
        for (ulong chunk = first; chunk <= last; chunk++)
        {
            lock (gate)
            {
                if (registeredSlots.Contains(chunk))
                {
                    continue;
                }

                ulong gpa = chunk * MemoryFileSlotSize;
                SetSlot((uint)(1 + chunk), gpa, MemoryFileSlotSize, (ulong)MemoryFile.BaseAddress + gpa);
                registeredSlots.Add(chunk);
            }
        }
    }

    /// <summary>A vCPU for a new execution context: an idle one, or a new one.</summary>
    public KvmVcpu AcquireVcpu()
    {
        lock (gate)
        {
            ObjectDisposedException.ThrowIf(disposed, this);
            if (idleVcpus.Count > 0)
            {
                var reused = idleVcpus.Pop();
                Platform.ResetExtendedState(reused);
                return reused;
            }

            var vcpu = new KvmVcpu(this, nextVcpuId++);
            allVcpus.Add(vcpu);
            return vcpu;
        }
    }

    public void ReleaseVcpu(KvmVcpu vcpu)
    {
        lock (gate)
        {
            if (disposed)
            {
                return;
            }

            vcpu.Run->ImmediateExit = 0;
            vcpu.Run->RequestInterruptWindow = 0;

            // Not just a pending switch: the vCPU's CR3 itself must leave the address space it ran, whose
            // page-table pages are freed and reused when that space is disposed (see KvmVcpu.LoadRoot).
            vcpu.LoadRoot(PhysicalOf(KernelRootOffset));
            idleVcpus.Push(vcpu);
        }
    }

    /// <summary>
    /// Rewrites page-table entries in place from inside the guest (see <see cref="TouchList"/>), on the
    /// service vCPU. Needed where the hypervisor shadows guest page tables (PVM): it only notices writes the
    /// guest makes.
    /// </summary>
    public void Touch(TouchList touches)
    {
        if (touches.Count == 0)
        {
            return;
        }

        lock (serviceGate)
        {
            KvmVcpu vcpu;
            lock (gate)
            {
                ObjectDisposedException.ThrowIf(disposed, this);
                if (service is null)
                {
                    service = new KvmVcpu(this, nextVcpuId++);
                    allVcpus.Add(service);
                }

                vcpu = service;
            }

            int done = 0;
            while (done < touches.Count)
            {
                int batch = Math.Min(VcpuPage.MaxTouches, touches.Count - done);
                var runs = (ulong*)(vcpu.Page + VcpuPage.Touches);
                for (int i = 0; i < batch; i++)
                {
                    var (address, count) = touches[done + i];
                    runs[2 * i] = address;
                    runs[(2 * i) + 1] = count;
                }

                vcpu.Word(VcpuPage.TouchCount) = (uint)batch;
                vcpu.RunWork();
                done += batch;
            }
        }
    }

    /// <summary>
    /// Runs one <c>syscall</c> in user mode on a new vCPU set up for the fast path and looks at where it
    /// stops. A hypervisor that emulates <c>syscall</c> without leaving user mode (kvm-pvm in native
    /// mode) stops at the syscall page's <c>out</c> with CS still the user's: then syscalls take the fast
    /// path. A CPU that enters ring 0 (hardware VMX/SVM) stops there in ring 0, and anything else is not
    /// understood: then the vCPU is switched to the supervisor stop (MSR_LSTAR at a ring-0 <c>hlt</c>).
    /// The vCPU goes to the idle pool either way, unless it broke. Setting
    /// <c>APPKERNEL_KVM_FAST_SYSCALLS=0</c> skips the probe and keeps the supervisor stop.
    /// </summary>
    private bool ProbeUserModeSyscalls()
    {
        if (Environment.GetEnvironmentVariable("APPKERNEL_KVM_FAST_SYSCALLS") == "0")
        {
            UserModeSyscalls = false;
            return false;
        }

        var vcpu = new KvmVcpu(this, nextVcpuId++);
        allVcpus.Add(vcpu);
        bool? fast = vcpu.ProbeUserModeSyscall();
        UserModeSyscalls = fast == true;
        if (fast is null)
        {
            return false;
        }

        if (fast == false)
        {
            vcpu.SetSyscallMode(false);
        }

        vcpu.LoadRoot(PhysicalOf(KernelRootOffset));
        idleVcpus.Push(vcpu);
        return fast.Value;
    }

    public void Dispose()
    {
        KvmVcpu[] vcpus;
        lock (gate)
        {
            if (disposed)
            {
                return;
            }

            disposed = true;
            vcpus = [.. allVcpus];
        }

        foreach (var vcpu in vcpus)
        {
            vcpu.Dispose();
        }

        if (VmFd > 0)
        {
            LibC.Close(VmFd);
        }

        if (region != 0 && region != LibC.MapFailed)
        {
            LibC.Munmap(region, (nuint)PlatformSize);
        }
    }

    private void SetSlot(uint slot, ulong gpa, ulong size, ulong host)
    {
        var memory = new KvmUserspaceMemoryRegion { Slot = slot, GuestPhysAddr = gpa, MemorySize = size, UserspaceAddr = host };
        Platform.Check(LibC.IoctlRetry(VmFd, KvmAbi.SetUserMemoryRegion, (nint)(&memory)), $"KVM_SET_USER_MEMORY_REGION (slot {slot})");
    }
}

/// <summary>Runs of page-table entries (supervisor address, count of 8-byte entries) to rewrite from inside the guest.</summary>
internal sealed class TouchList
{
    private readonly List<(ulong Address, ulong Count)> runs = [];

    public int Count => runs.Count;

    public (ulong Address, ulong Count) this[int index] => runs[index];

    /// <summary>Adds one entry, merging it with the last run when adjacent.</summary>
    public void Add(ulong address)
    {
        if (runs.Count > 0)
        {
            var (last, count) = runs[^1];
            if (last + (count * 8) == address && (address & 0xFFF) != 0)
            {
                runs[^1] = (last, count + 1);
                return;
            }
        }

        runs.Add((address, 1));
    }

    /// <summary>Adds a run as it is (from another list).</summary>
    public void AddRun((ulong Address, ulong Count) run) => runs.Add(run);

    public void Clear() => runs.Clear();
}
