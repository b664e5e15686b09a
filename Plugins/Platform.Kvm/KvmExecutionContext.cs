using AppKernel.Platform.Kvm.Native;

namespace AppKernel.Platform.Kvm;

/// <summary>
/// Runs one program thread on one vCPU. <see cref="Switch"/> hands the general registers to KVM through
/// the sync-regs area of <c>kvm_run</c> (KVM_CAP_SYNC_REGS) and RIP/RFLAGS/RSP as an iret frame on the
/// vCPU's stack, runs KVM_RUN until the vCPU stops at one of the trampoline's <c>hlt</c>s, and reads them
/// back the same way: no register ioctl on the syscall path.
/// </summary>
/// <remarks>
/// <para>Threading: <see cref="Switch"/>, <see cref="LoadExtendedState"/> and <see cref="Dispose"/> from
/// one thread at a time (the task's own, normally a dedicated <see cref="Thread"/>);
/// <see cref="Interrupt"/> from any thread. A vCPU is kicked out of KVM_RUN by a signal to the thread
/// in <see cref="Switch"/> (with kvm_run's immediate_exit closing the race with entering KVM_RUN); a program
/// running in user mode is then pulled into the trampoline by an injected interrupt, so its registers
/// are always those of an instruction boundary.</para>
/// </remarks>
public sealed unsafe class KvmExecutionContext : IExecutionContext
{
    // Linux's signal numbers and si_codes for CPU exceptions.
    private const int SIGILL = 4, SIGTRAP = 5, SIGBUS = 7, SIGFPE = 8, SIGSEGV = 11;
    private const int ILL_ILLOPN = 2, FPE_INTDIV = 1, FPE_FLTDIV = 3, FPE_FLTOVF = 4, FPE_FLTUND = 5, FPE_FLTRES = 6, FPE_FLTINV = 7;
    private const int SEGV_MAPERR = 1, SEGV_ACCERR = 2, BUS_ADRALN = 1, TRAP_TRACE = 2, SI_KERNEL = 0x80;

    // The RFLAGS bits a program may set (CF PF AF ZF SF TF DF OF AC ID); IF and bit 1 are always set.
    private const ulong UserFlags = 0x1 | 0x4 | 0x10 | 0x40 | 0x80 | 0x100 | 0x400 | 0x800 | 0x4_0000 | 0x20_0000;

    [ThreadStatic]
    private static int hostThreadId;

    private readonly KvmPlatform platform;
    private readonly KvmAddressSpace space;
    private readonly KvmVcpu vcpu;
    private long flushedGeneration;
    private long guestGeneration; // 0 outside KVM_RUN; else 1 + the generation the vCPU is flushed to
    private int runnerThreadId;
    private int interruptPending;
    private long cpuNanoseconds;  // CPU time of the finished KVM_RUNs
    private long runStartedAt;    // the runner thread's CPU clock when the KVM_RUN in progress began; 0 outside
    private int cpuSequence;      // odd while the two above change (readers on other threads retry)
    private long cpuReported;     // the largest figure reported (CpuTime never goes back)
    private int inSwitch;
    private bool kickQueued;
    private int disposed;

    internal KvmExecutionContext(KvmPlatform platform, KvmAddressSpace space, KvmVcpu vcpu)
    {
        this.platform = platform;
        this.space = space;
        this.vcpu = vcpu;
        vcpu.SwitchRoot(space.Root);
        flushedGeneration = space.Generation;
        space.Attach(this);
    }

    internal KvmVcpu VcpuForTests => vcpu;

    /// <summary>The KVM vCPU id (for diagnostics).</summary>
    public int VcpuId => vcpu.Id;

    /// <summary>
    /// The CPU time of this context's KVM_RUN calls: the program's computing and the hypervisor's work
    /// for its exits (on kvm-pvm, the emulation of its <c>syscall</c>s and of the trampoline's two
    /// instructions), measured with the CPU clock of the host thread that runs it (nanoseconds, the
    /// scheduler's figure). That thread is the task's own, so this time is also part of that thread's
    /// CPU clock: the platform says so with <see cref="PlatformCapabilities.CpuTimeInTaskThread"/>, and
    /// the Sentry counts only the rest as its system time. Safe from any thread; allocates nothing; keeps
    /// its last figure after <see cref="Dispose"/>.
    /// </summary>
    /// <remarks>
    /// The guest time the host kernel reports per thread (<c>guest_time</c> in procfs) cannot serve: it is
    /// sampled at scheduler ticks, and on kvm-pvm, where the guest runs in host user mode, the ticks
    /// count it as user time, so guest time stays near zero.
    /// </remarks>
    public TimeSpan CpuTime
    {
        get
        {
            long total;
            while (true)
            {
                int sequence = Volatile.Read(ref cpuSequence);
                if ((sequence & 1) != 0)
                {
                    Thread.SpinWait(1);
                    continue;
                }

                total = Volatile.Read(ref cpuNanoseconds);
                long startedAt = Volatile.Read(ref runStartedAt);
                if (startedAt != 0)
                {
                    // In KVM_RUN now: add what the runner's clock has counted since it entered.
                    long now = LibC.ReadClock(LibC.ThreadCpuClock(Volatile.Read(ref runnerThreadId)));
                    if (now > startedAt)
                    {
                        total += now - startedAt;
                    }
                }

                if (Volatile.Read(ref cpuSequence) == sequence)
                {
                    break;
                }
            }

            long reported = Volatile.Read(ref cpuReported);
            while (total > reported)
            {
                long seen = Interlocked.CompareExchange(ref cpuReported, total, reported);
                if (seen == reported)
                {
                    reported = total;
                    break;
                }

                reported = seen;
            }

            return TimeSpan.FromTicks(reported / 100);
        }
    }

    /// <summary>
    /// Runs the program until it makes a syscall, faults, raises a CPU exception or is interrupted;
    /// allocates nothing.
    /// </summary>
    public SwitchResult Switch(CpuState state)
    {
        ArgumentNullException.ThrowIfNull(state);
        ObjectDisposedException.ThrowIf(Volatile.Read(ref disposed) != 0, this);
        if (hostThreadId == 0)
        {
            hostThreadId = LibC.GetTid();
        }

        Volatile.Write(ref runnerThreadId, hostThreadId);
        Volatile.Write(ref inSwitch, 1);
        try
        {
            if (Interlocked.Exchange(ref interruptPending, 0) != 0)
            {
                return SwitchResult.InterruptedStop;
            }

            ref var r = ref state.Registers;
            if (r.Rip >= 0x8000_0000_0000)
            {
                // A non-canonical or supervisor return address: what returning there does on Linux.
                return new SwitchResult(SwitchReason.Fault, SIGSEGV, SI_KERNEL, 0);
            }

            if (state.ExtendedStateDirty)
            {
                WriteExtendedState(state);
            }

            if (r.FsBase != vcpu.FsBase || r.GsBase != vcpu.GsBase)
            {
                WriteSegmentBases(r.FsBase, r.GsBase);
            }

            Load(in r);
            return Run(state);
        }
        finally
        {
            Volatile.Write(ref inSwitch, 0);
        }
    }

    /// <summary>Makes a running <see cref="Switch"/> return <see cref="SwitchReason.Interrupted"/> promptly, or the next one at once.</summary>
    public void Interrupt()
    {
        Interlocked.Exchange(ref interruptPending, 1);
        Kick();
    }

    /// <summary>Reads the program's FP/SSE/AVX state (XSAVE layout, KVM_GET_XSAVE) into <see cref="CpuState.ExtendedState"/>.</summary>
    public void LoadExtendedState(CpuState state)
    {
        ArgumentNullException.ThrowIfNull(state);
        if (state.ExtendedStateDirty)
        {
            WriteExtendedState(state);
        }

        int size = platform.XsaveSize;
        byte* image = stackalloc byte[size];
        platform.Check(LibC.IoctlRetry(vcpu.Fd, platform.GetXsaveRequest, (nint)image), "KVM_GET_XSAVE");
        var target = state.ExtendedState.AsSpan();
        int copy = Math.Min(size, target.Length);
        new ReadOnlySpan<byte>(image, copy).CopyTo(target);
        target[copy..].Clear();
    }

    /// <summary>Returns the vCPU to its VM's pool.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref disposed, 1) != 0)
        {
            return;
        }

        space.Detach(this);
        space.Machine.ReleaseVcpu(vcpu);
    }

    /// <summary>Returns once this vCPU can no longer use translations older than <paramref name="generation"/>.</summary>
    internal void WaitUntilFlushed(long generation)
    {
        var spin = new SpinWait();
        while (true)
        {
            long inGuest = Volatile.Read(ref guestGeneration);
            if (inGuest == 0 || inGuest - 1 >= generation)
            {
                return;
            }

            Kick();
            spin.SpinOnce();
        }
    }

    private void Kick()
    {
        vcpu.Run->ImmediateExit = 1;
        int tid = Volatile.Read(ref runnerThreadId);
        if (tid != 0 && Volatile.Read(ref inSwitch) != 0)
        {
            KickSignal.Send(tid);
        }
    }

    private SwitchResult Run(CpuState state)
    {
        var run = vcpu.Run;
        while (true)
        {
            bool parked = IsParked(run);
            long generation = space.Generation;
            bool stale = generation != flushedGeneration;
            if (parked && (stale || vcpu.Word(VcpuPage.LoadCr3) != 0))
            {
                // Return through the CR3 reload: a new address space, or entries changed since the last flush.
                vcpu.Quad(VcpuPage.Cr3) = vcpu.Root;
                vcpu.Word(VcpuPage.LoadCr3) = 0;
                run->Regs.Rip = vcpu.Code(space.Machine.Image.FlushAndReturn);
                run->DirtyRegs = KvmAbi.SyncRegsGeneral;
                flushedGeneration = generation;
                stale = false;
            }

            // Publish what this vCPU is flushed to, then look again (Dekker with WaitUntilFlushed).
            Interlocked.Exchange(ref guestGeneration, (stale ? flushedGeneration : generation) + 1);
            if (space.Generation != generation)
            {
                Volatile.Write(ref guestGeneration, 0);
                continue;
            }

            if (stale && !kickQueued)
            {
                // The program runs on translations that changed: pull it into the trampoline first.
                Pull(run);
            }

            BeginRun();
            int result = vcpu.RunOnce();
            EndRun();
            Volatile.Write(ref guestGeneration, 0);
            if (result == -LibC.EINTR)
            {
                run->ImmediateExit = 0;
                if (Volatile.Read(ref interruptPending) != 0)
                {
                    if (IsParked(run))
                    {
                        // Nothing ran: the state the Sentry passed in is still the program's.
                        Interlocked.Exchange(ref interruptPending, 0);
                        return SwitchResult.InterruptedStop;
                    }

                    if (!kickQueued)
                    {
                        Pull(run);
                    }
                }

                continue;
            }

            platform.Check(result, "KVM_RUN");
            switch (run->ExitReason)
            {
                case KvmAbi.ExitHlt:
                    vcpu.InUserMode = false;
                    break;
                case KvmAbi.ExitIo:
                    // Only ring 3 does I/O (the trampoline never does), and only to the syscall port.
                    run->RequestInterruptWindow = 0;
                    vcpu.InUserMode = true;
                    vcpu.IoPending = true;
                    return UserModeStop(run, state);
                case KvmAbi.ExitIrqWindowOpen:
                    run->RequestInterruptWindow = 0;
                    if (!kickQueued)
                    {
                        Pull(run);
                    }

                    continue;
                default:
                    throw vcpu.UnexpectedExit();
            }

            run->RequestInterruptWindow = 0;
            var image = space.Machine.Image;
            ulong stop = run->Regs.Rip - 1 - vcpu.Code(image.Vectors);
            ref var r = ref state.Registers;
            if (run->Regs.Rip == vcpu.Code(image.SyscallStop) + 1)
            {
                // A syscall that entered ring 0 (hardware VMX/SVM): registers untouched, RIP in RCX.
                Capture(ref r, rip: run->Regs.Rcx, rflags: run->Regs.R11, rsp: run->Regs.Rsp);
                r.OrigRax = r.Rax;
                return SwitchResult.SyscallStop;
            }

            if (stop >= 256 * Trampoline.VectorStubSize)
            {
                throw vcpu.UnexpectedExit();
            }

            int vector = (int)(stop / Trampoline.VectorStubSize);
            ulong error = 0;
            ulong frame = run->Regs.Rsp;
            if (Trampoline.HasErrorCode(vector))
            {
                error = Stack(frame);
                frame += 8;
            }

            if ((Stack(frame + 8) & 3) == 0)
            {
                throw vcpu.KernelFault(vector, Stack(frame), error);
            }

            Capture(ref r, rip: Stack(frame), rflags: Stack(frame + 16), rsp: Stack(frame + 24));
            r.OrigRax = ulong.MaxValue;
            if (vector == (int)VcpuPage.KickVector)
            {
                kickQueued = false;
                if (Interlocked.Exchange(ref interruptPending, 0) != 0)
                {
                    return SwitchResult.InterruptedStop;
                }

                Load(in r); // pulled in for a TLB flush: the loop flushes and returns to the program
                continue;
            }

            return Decode(vector, error, state);
        }
    }

    /// <summary>
    /// An I/O exit: the fast-path syscall (the syscall page's <c>out</c>, reached by the hypervisor's
    /// emulation of <c>syscall</c> in user mode), or the program's own <c>in</c>/<c>out</c> on the one port
    /// the TSS lets it use, which Linux answers with SIGSEGV (#GP) as for any port.
    /// </summary>
    private SwitchResult UserModeStop(KvmRun* run, CpuState state)
    {
        ref var r = ref state.Registers;
        ref var g = ref run->Regs;
        ulong io = run->Exit0; // direction (byte 0, 1 = out), size (byte 1), port (bytes 2-3), count (bytes 4-7)
        bool syscall = (io & 0xFF) == 1 && ((io >> 16) & 0xFFFF) == GuestLayout.SyscallPort &&
            g.Rip == GuestLayout.SyscallPageAddress + 2 && space.Machine.UserModeSyscalls;
        if (syscall)
        {
            Capture(ref r, rip: g.Rcx, rflags: g.R11, rsp: g.Rsp);
            r.OrigRax = r.Rax;
            return SwitchResult.SyscallStop;
        }

        vcpu.CompletePendingIo();
        Capture(ref r, rip: g.Rip, rflags: g.Rflags, rsp: g.Rsp);
        r.OrigRax = ulong.MaxValue;
        return new SwitchResult(SwitchReason.Fault, SIGSEGV, SI_KERNEL, 0);
    }

    /// <summary>Notes the runner thread's CPU clock as KVM_RUN begins (see <see cref="CpuTime"/>).</summary>
    private void BeginRun()
    {
        long now = LibC.ReadClock(LibC.CLOCK_THREAD_CPUTIME_ID);
        Interlocked.Increment(ref cpuSequence);
        Volatile.Write(ref runStartedAt, Math.Max(now, 1));
        Interlocked.Increment(ref cpuSequence);
    }

    /// <summary>Adds the CPU time of the KVM_RUN that just returned.</summary>
    private void EndRun()
    {
        long now = LibC.ReadClock(LibC.CLOCK_THREAD_CPUTIME_ID);
        Interlocked.Increment(ref cpuSequence);
        long startedAt = runStartedAt;
        if (now > startedAt)
        {
            Volatile.Write(ref cpuNanoseconds, cpuNanoseconds + (now - startedAt));
        }

        Volatile.Write(ref runStartedAt, 0);
        Interlocked.Increment(ref cpuSequence);
    }

    /// <summary>Whether the vCPU sits at a return entry it has not executed yet (so nothing of the program ran).</summary>
    private bool IsParked(KvmRun* run)
    {
        var image = space.Machine.Image;
        ulong rip = run->Regs.Rip;
        return rip == vcpu.Code(image.Return) || rip == vcpu.Code(image.FlushAndReturn);
    }

    /// <summary>
    /// Writes the program's registers. A vCPU that stopped in user mode (fast-path syscall) resumes there
    /// directly: every register, RIP/RSP/RFLAGS included, through sync regs, unless it must load CR3 first
    /// (a new address space or a TLB flush), which takes ring 0. Otherwise the general registers go through
    /// sync regs and RIP/RFLAGS/RSP as an iret frame for the trampoline's return.
    /// </summary>
    private void Load(in Registers r)
    {
        var run = vcpu.Run;
        ref var g = ref run->Regs;
        if (vcpu.InUserMode)
        {
            if (space.Generation == flushedGeneration && vcpu.Word(VcpuPage.LoadCr3) == 0)
            {
                LoadUser(in r);
                return;
            }

            vcpu.EnterSupervisor();
        }

        StoreGeneral(ref g, in r);
        ulong frame = vcpu.StackTop - 40;
        var f = (ulong*)vcpu.Machine.Host(frame - GuestLayout.SupervisorBase);
        f[0] = r.Rip;
        f[1] = 0x33;
        f[2] = (r.Eflags & UserFlags) | 0x202;
        f[3] = r.Rsp;
        f[4] = 0x2b;
        g.Rsp = frame;
        g.Rflags = 2;
        g.Rip = vcpu.Code(space.Machine.Image.Return);
        run->DirtyRegs = KvmAbi.SyncRegsGeneral;
    }

    /// <summary>Writes every register of the program through sync regs, for a vCPU in user mode.</summary>
    private void LoadUser(in Registers r)
    {
        var run = vcpu.Run;
        ref var g = ref run->Regs;
        StoreGeneral(ref g, in r);
        g.Rip = r.Rip;
        g.Rsp = r.Rsp;
        g.Rflags = (r.Eflags & UserFlags) | 0x202;
        run->DirtyRegs = KvmAbi.SyncRegsGeneral;
    }

    /// <summary>Copies the fifteen general registers (not RSP) into the sync-regs block.</summary>
    private static void StoreGeneral(ref KvmRegs g, in Registers r)
    {
        g.Rax = r.Rax;
        g.Rbx = r.Rbx;
        g.Rcx = r.Rcx;
        g.Rdx = r.Rdx;
        g.Rsi = r.Rsi;
        g.Rdi = r.Rdi;
        g.Rbp = r.Rbp;
        g.R8 = r.R8;
        g.R9 = r.R9;
        g.R10 = r.R10;
        g.R11 = r.R11;
        g.R12 = r.R12;
        g.R13 = r.R13;
        g.R14 = r.R14;
        g.R15 = r.R15;
    }

    /// <summary>Reads the program's registers back: general ones from sync regs, the rest as given.</summary>
    private void Capture(ref Registers r, ulong rip, ulong rflags, ulong rsp)
    {
        ref var g = ref vcpu.Run->Regs;
        r.Rax = g.Rax;
        r.Rbx = g.Rbx;
        r.Rcx = g.Rcx;
        r.Rdx = g.Rdx;
        r.Rsi = g.Rsi;
        r.Rdi = g.Rdi;
        r.Rbp = g.Rbp;
        r.R8 = g.R8;
        r.R9 = g.R9;
        r.R10 = g.R10;
        r.R11 = g.R11;
        r.R12 = g.R12;
        r.R13 = g.R13;
        r.R14 = g.R14;
        r.R15 = g.R15;
        r.Rip = rip;
        r.Eflags = rflags;
        r.Rsp = rsp;
        r.Cs = 0x33;
        r.Ss = 0x2b;
        r.Ds = r.Es = r.Fs = r.Gs = 0;
        r.FsBase = vcpu.FsBase;
        r.GsBase = vcpu.GsBase;
    }

    private ulong Stack(ulong address) => *(ulong*)vcpu.Machine.Host(address - GuestLayout.SupervisorBase);

    private void WriteSegmentBases(ulong fsBase, ulong gsBase)
    {
        Span<KvmMsrEntry> msrs =
        [
            new() { Index = KvmAbi.MsrFsBase, Data = fsBase },
            new() { Index = KvmAbi.MsrGsBase, Data = gsBase },
        ];
        platform.SetMsrs(vcpu.Fd, msrs);
        vcpu.FsBase = fsBase;
        vcpu.GsBase = gsBase;
    }

    private ulong ReadCr2()
    {
        KvmSregs sregs;
        platform.Check(LibC.IoctlRetry(vcpu.Fd, KvmAbi.GetSregs, (nint)(&sregs)), "KVM_GET_SREGS");
        return sregs.Cr2;
    }

    /// <summary>Gets the program into the trampoline: an interrupt when it can take one now, else a window exit first.</summary>
    private void Pull(KvmRun* run)
    {
        if (run->ReadyForInterruptInjection != 0 && run->IfFlag != 0)
        {
            uint vector = VcpuPage.KickVector;
            int result = LibC.IoctlRetry(vcpu.Fd, KvmAbi.Interrupt, (nint)(&vector));
            if (result == 0 || LibC.Errno == LibC.EEXIST)
            {
                kickQueued = true;
                return;
            }

            platform.Check(result, "KVM_INTERRUPT");
        }

        run->RequestInterruptWindow = 1;
    }

    private static void FixSelectors(CpuState state)
    {
        ref var r = ref state.Registers;
        r.Cs = 0x33;
        r.Ss = 0x2b;
        r.Ds = r.Es = r.Fs = r.Gs = 0;
    }

    /// <summary>Maps what stopped the program to what Linux would deliver.</summary>
    private SwitchResult Decode(int vector, ulong error, CpuState state)
    {
        ref var r = ref state.Registers;
        ulong rip = r.Rip;
        ulong syscallStop = vcpu.Code(space.Machine.Image.SyscallStop);
        switch (vector)
        {
            case 14 when rip == syscallStop && (error & 0x14) == 0x14:
                // A hypervisor that emulates `syscall` without leaving user mode (kvm-pvm in native mode)
                // lands on the supervisor-only LSTAR in user mode: the fetch fault is the syscall.
                r.Rip = r.Rcx;
                r.Eflags = r.R11;
                r.OrigRax = r.Rax;
                return SwitchResult.SyscallStop;
            case 14: // #PF
            {
                ulong address = ReadCr2();
                var access = (error & 0x10) != 0 ? MemoryAccess.Execute : (error & 0x2) != 0 ? MemoryAccess.Write : MemoryAccess.Read;
                int code = (error & 1) != 0 && address < GuestLayout.SupervisorBase ? SEGV_ACCERR : SEGV_MAPERR;
                return new SwitchResult(SwitchReason.Fault, SIGSEGV, code, address, access);
            }

            case 0: // #DE
                return new SwitchResult(SwitchReason.Signal, SIGFPE, FPE_INTDIV, rip);
            case 1: // #DB
                return new SwitchResult(SwitchReason.Signal, SIGTRAP, TRAP_TRACE, rip);
            case 3: // #BP (int3): rip is after the instruction
                return new SwitchResult(SwitchReason.Signal, SIGTRAP, SI_KERNEL, 0);
            case 6: // #UD
                return new SwitchResult(SwitchReason.Signal, SIGILL, ILL_ILLOPN, rip);
            case 16: // #MF: the x87 status and control words say which exception
            case 19: // #XM: MXCSR does
                return new SwitchResult(SwitchReason.Signal, SIGFPE, FloatingCode(vector, state), rip);
            case 17: // #AC
                return new SwitchResult(SwitchReason.Signal, SIGBUS, BUS_ADRALN, 0);
            case 11: // #NP
            case 12: // #SS
                return new SwitchResult(SwitchReason.Signal, SIGBUS, SI_KERNEL, 0);
            default: // #GP, #TS, int 0x80 and other vectors: what Linux does for a 64-bit-only process
                return new SwitchResult(SwitchReason.Fault, SIGSEGV, SI_KERNEL, 0);
        }
    }

    /// <summary>The FPE_* code Linux derives from the pending, unmasked floating-point exceptions.</summary>
    private int FloatingCode(int vector, CpuState state)
    {
        LoadExtendedState(state);
        var image = state.ExtendedState;
        uint pending;
        if (vector == 16)
        {
            uint control = BitConverter.ToUInt16(image, 0);
            uint status = BitConverter.ToUInt16(image, 2);
            pending = status & ~control & 0x3F;
        }
        else
        {
            uint mxcsr = BitConverter.ToUInt32(image, 24);
            pending = mxcsr & ~(mxcsr >> 7) & 0x3F;
        }

        return FloatingCode(pending);
    }

    private static int FloatingCode(uint pending) =>
        (pending & 0x01) != 0 ? FPE_FLTINV :
        (pending & 0x04) != 0 ? FPE_FLTDIV :
        (pending & 0x08) != 0 ? FPE_FLTOVF :
        (pending & 0x12) != 0 ? FPE_FLTUND :
        (pending & 0x20) != 0 ? FPE_FLTRES : 0;

    private void WriteExtendedState(CpuState state)
    {
        int size = platform.XsaveSize;
        byte* image = stackalloc byte[size];
        var span = new Span<byte>(image, size);
        span.Clear();
        var source = state.ExtendedState.AsSpan();
        source[..Math.Min(size, source.Length)].CopyTo(span);
        *(uint*)(image + 24) &= 0xFFFF;                  // MXCSR: no reserved bits
        *(ulong*)(image + 512) &= platform.GuestXcr0;    // XSTATE_BV: only features the guest has
        *(ulong*)(image + 520) = 0;                      // XCOMP_BV: standard format
        platform.Check(LibC.IoctlRetry(vcpu.Fd, KvmAbi.SetXsave, (nint)image), "KVM_SET_XSAVE");
        state.ExtendedStateDirty = false;
    }
}
