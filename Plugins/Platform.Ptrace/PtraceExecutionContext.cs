using AppKernel.Platform.Ptrace.Native;
using AppKernel.Platform.Ptrace.Stub;

namespace AppKernel.Platform.Ptrace;

/// <summary>
/// Runs one program thread on one stub thread under ptrace: every program syscall stops with
/// PTRACE_SYSEMU (and never reaches the host), faults and CPU signals stop as signal-delivery
/// stops whose signal is suppressed.
/// </summary>
/// <remarks>
/// <para>Threading contract. ptrace accepts requests only from the tracer <em>thread</em>, so the
/// first host thread that calls <see cref="Switch"/> (or <see cref="LoadExtendedState"/>) adopts the
/// stub thread: it seizes it, and from then on only that host thread may call <see cref="Switch"/>,
/// <see cref="LoadExtendedState"/> and <see cref="Dispose"/>. That host thread and its stub thread are
/// pinned to one CPU (a ptrace round trip between CPUs costs several times more). A dedicated
/// <see cref="Thread"/> per program thread is required: never the thread pool, never async code.</para>
/// <para>The adopting host thread must outlive the context or dispose it first: ptrace's EXITKILL
/// option kills the whole stub process (and every thread of the address space) when a tracer thread
/// ends while it still traces a stub thread. That is deliberate: a crashed Sentry leaves no stub
/// running.</para>
/// <para><see cref="Interrupt"/> may be called from any thread at any time.</para>
/// </remarks>
public sealed unsafe class PtraceExecutionContext : IExecutionContext
{
    private const int SysSeccomp = 1; // si_code of a seccomp SIGSYS
    private const ulong VsyscallPage = 0xffff_ffff_ff60_0000;

    [ThreadStatic]
    private static List<PtraceExecutionContext>? tracedByThisThread;

    private readonly PtraceAddressSpace addressSpace;
    private readonly StubThread thread;
    private readonly object adoptGate = new();
    private readonly bool pinToCpu;
    private readonly StubCpuClock cpuClock;
    private int tracerThreadId;
    private int interruptPending;
    private int running;
    private int disposed;

    internal PtraceExecutionContext(PtraceAddressSpace addressSpace, StubThread thread, bool pinToCpu)
    {
        this.addressSpace = addressSpace;
        this.thread = thread;
        this.pinToCpu = pinToCpu;
        cpuClock = new StubCpuClock(thread.ProcessId, thread.ThreadId);
    }

    /// <summary>The host thread id of the stub thread that runs this program thread.</summary>
    public int StubThreadId => thread.ThreadId;

    /// <summary>The host process id of the stub process.</summary>
    public int StubProcessId => thread.ProcessId;

    internal PtraceAddressSpace AddressSpace => addressSpace;

    /// <summary>
    /// The stub thread's CPU time (procfs schedstat, nanosecond resolution): the program's own
    /// computing plus the host kernel's trap and stop work for it. Safe from any thread; allocates
    /// nothing; after <see cref="Dispose"/> the final figure.
    /// </summary>
    public TimeSpan CpuTime => TimeSpan.FromTicks(cpuClock.Nanoseconds / 100);

    internal StubThread Thread => thread;

    /// <summary>True while the control thread still holds the stub thread (no host thread adopted it yet).</summary>
    internal bool IsHeld => Volatile.Read(ref tracerThreadId) == 0;

    /// <summary>
    /// Runs the program with <paramref name="state"/> until it makes a syscall, faults, gets a CPU
    /// signal or is interrupted. Writes the general registers (and the XSAVE image when
    /// <see cref="CpuState.ExtendedStateDirty"/>), resumes with PTRACE_SYSEMU, and reads the registers
    /// back into <paramref name="state"/>. Allocates nothing.
    /// </summary>
    /// <remarks>
    /// <c>orig_rax</c> is always written as -1, so the host kernel never restarts a syscall on its
    /// own: restarts are the Sentry's business. A state whose code and stack selectors are zero
    /// (a fresh <see cref="CpuState"/>) gets the user selectors.
    /// </remarks>
    /// <exception cref="StubProcessExitedException">The stub process is gone.</exception>
    /// <exception cref="InvalidOperationException">Called from a host thread other than the one that adopted the context.</exception>
    public SwitchResult Switch(CpuState state)
    {
        EnsureTracer();
        if (Interlocked.Exchange(ref interruptPending, 0) != 0)
        {
            return SwitchResult.InterruptedStop;
        }

        // Announce that we run, then look again: Interrupt sets its flag and then looks at ours.
        Interlocked.Exchange(ref running, 1);
        try
        {
            if (Interlocked.Exchange(ref interruptPending, 0) != 0)
            {
                return SwitchResult.InterruptedStop;
            }

            WriteState(state);
            while (true)
            {
                thread.Resume(PtraceRequest.Sysemu);
                var status = thread.WaitBlocking();
                if (!status.Stopped)
                {
                    throw thread.Died(status);
                }

                int signal = status.StopSignal;
                if (signal == PtraceRequest.SyscallStopSignal)
                {
                    ReadRegisters(state);

                    // The syscall instruction leaves rcx == rip; int 0x80 and sysenter (the 32-bit
                    // entries, which stop the same way) do not.
                    return state.Registers.Rcx == state.Registers.Rip ? SwitchResult.SyscallStop : CompatSyscall(state);
                }

                if (status.Event != 0)
                {
                    continue; // a group stop or event stop: nothing for the Sentry
                }

                switch (signal)
                {
                    case LibC.SIGSTKFLT:
                        if (Interlocked.Exchange(ref interruptPending, 0) != 0)
                        {
                            ReadRegisters(state);
                            return SwitchResult.InterruptedStop;
                        }

                        continue; // a late signal of an interrupt already reported

                    case LibC.SIGSEGV:
                    {
                        GetSignalInfo(out var info);
                        ReadRegisters(state);
                        return new SwitchResult(SwitchReason.Fault, signal, info.Code, info.Address);
                    }

                    case LibC.SIGBUS:
                    case LibC.SIGFPE:
                    case LibC.SIGILL:
                    case LibC.SIGTRAP:
                    {
                        GetSignalInfo(out var info);
                        ReadRegisters(state);
                        return new SwitchResult(SwitchReason.Signal, signal, info.Code, info.Address);
                    }

                    case LibC.SIGSYS:
                    {
                        GetSignalInfo(out var info);
                        if (info.Code == SysSeccomp)
                        {
                            ReadRegisters(state);
                            return VsyscallFault(state, info.Address);
                        }

                        continue;
                    }

                    default:
                        continue; // a host signal sent to the stub from outside: suppressed
                }
            }
        }
        finally
        {
            Volatile.Write(ref running, 0);
        }
    }

    /// <summary>
    /// Makes a running <see cref="Switch"/> return <see cref="SwitchReason.Interrupted"/> promptly, or
    /// the next one return it at once. Safe from any thread; allocates nothing.
    /// </summary>
    public void Interrupt()
    {
        Interlocked.Exchange(ref interruptPending, 1);
        if (Volatile.Read(ref running) != 0 && Volatile.Read(ref disposed) == 0 && !thread.Reaped)
        {
            // The signal stops the stub thread; Switch suppresses it. If Switch already returned,
            // the signal shows up at the next run and is dropped there.
            LibC.Tgkill(thread.ProcessId, thread.ThreadId, LibC.SIGSTKFLT);
        }
    }

    /// <summary>
    /// Reads the program's FP/SSE/AVX state (PTRACE_GETREGSET NT_X86_XSTATE) into <see cref="CpuState.ExtendedState"/>.
    /// A dirty image (changed by the Sentry, e.g. copied from a parent by <see cref="CpuState.CopyFrom"/>) is
    /// written to the thread first, so the Sentry's changes are never lost.
    /// </summary>
    /// <exception cref="ArgumentException">The buffer is smaller than <see cref="PtracePlatform.ExtendedStateSize"/>.</exception>
    public void LoadExtendedState(CpuState state)
    {
        ArgumentNullException.ThrowIfNull(state);
        EnsureTracer();
        CheckExtendedStateSize(state);
        if (state.ExtendedStateDirty)
        {
            WriteExtendedState(state);
        }

        fixed (byte* buffer = state.ExtendedState)
        {
            var io = new IoVec { Base = buffer, Length = (nuint)state.ExtendedState.Length };
            thread.Check(LibC.Ptrace(PtraceRequest.GetRegSet, thread.ThreadId, PtraceRequest.NtX86Xstate, (nint)(&io)), "PTRACE_GETREGSET");
        }
    }

    /// <summary>
    /// Ends the stub thread (an injected exit). Call it on the host thread that adopted the context;
    /// from another thread the stub thread is left stopped until its address space is disposed.
    /// </summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref disposed, 1) != 0)
        {
            return;
        }

        // The last CPU figure, while the stub thread still exists.
        cpuClock.Freeze();
        try
        {
            lock (adoptGate)
            {
                if (thread.Reaped || addressSpace.IsDisposed)
                {
                    return;
                }

                if (IsHeld)
                {
                    addressSpace.ExitHeldThread(thread);
                }
                else if (tracerThreadId == Environment.CurrentManagedThreadId)
                {
                    thread.Inject(SeccompFilter.SysExit);
                }
            }
        }
        catch (StubProcessExitedException)
        {
            // Already gone: nothing to end.
        }
        finally
        {
            tracedByThisThread?.Remove(this);
        }
    }

    /// <summary>A stopped stub thread of <paramref name="space"/> that the calling host thread traces, if any.</summary>
    internal static StubThread? FindTracedByCaller(PtraceAddressSpace space)
    {
        var list = tracedByThisThread;
        if (list is null)
        {
            return null;
        }

        for (int i = list.Count - 1; i >= 0; i--)
        {
            var context = list[i];
            if (context.thread.Reaped || Volatile.Read(ref context.disposed) != 0)
            {
                list.RemoveAt(i); // disposed from another thread, or dead
            }
            else if (context.addressSpace == space)
            {
                return context.thread;
            }
        }

        return null;
    }

    private void EnsureTracer()
    {
        int me = Environment.CurrentManagedThreadId;
        int tracer = Volatile.Read(ref tracerThreadId);
        if (tracer == me)
        {
            return;
        }

        ObjectDisposedException.ThrowIf(Volatile.Read(ref disposed) != 0, this);
        if (tracer != 0)
        {
            throw new InvalidOperationException(
                $"stub thread {thread.ThreadId} is traced by host thread {tracer}; ptrace accepts requests only from that thread, " +
                $"but this is thread {me}. Run each execution context on one dedicated thread.");
        }

        Adopt(me);
    }

    /// <summary>Takes the stub thread over from the control thread: it parks it untraced, we seize it.</summary>
    private void Adopt(int me)
    {
        lock (adoptGate)
        {
            if (tracerThreadId != 0)
            {
                EnsureTracer();
                return;
            }

            addressSpace.ReleaseHeldThread(thread);
            if (LibC.Ptrace(PtraceRequest.Seize, thread.ThreadId, 0, (nint)StubLauncher.TraceOptions) != 0)
            {
                int errno = LibC.Errno;
                throw new InvalidOperationException($"ptrace(PTRACE_SEIZE) of stub thread {thread.ThreadId} failed: {LibC.Describe(errno)}");
            }

            thread.Check(LibC.Ptrace(PtraceRequest.Interrupt, thread.ThreadId, 0, 0), "PTRACE_INTERRUPT");
            while (true)
            {
                var status = thread.WaitBlocking();
                if (!status.Stopped)
                {
                    throw thread.Died(status);
                }

                if (status.Event == PtraceRequest.EventStop)
                {
                    break;
                }

                thread.Resume(PtraceRequest.Cont); // a signal that arrived first: drop it, the interrupt stop follows
            }

            thread.GetRegisters(out thread.Template);
            if (pinToCpu)
            {
                CpuAffinity.PinCallerAndStub(thread.ThreadId);
            }

            (tracedByThisThread ??= []).Add(this);
            Volatile.Write(ref tracerThreadId, me);
        }
    }

    /// <summary>
    /// A 32-bit syscall entry (int 0x80, sysenter): the platform offers only the 64-bit ABI, so this
    /// is what Linux without IA32 emulation does: SIGSEGV (SI_KERNEL) at the 2-byte instruction.
    /// </summary>
    private static SwitchResult CompatSyscall(CpuState state)
    {
        ref var r = ref state.Registers;
        r.Rip -= 2;
        r.Rax = r.OrigRax;
        r.OrigRax = ulong.MaxValue;
        return new SwitchResult(SwitchReason.Fault, LibC.SIGSEGV, LibC.SI_KERNEL, 0);
    }

    /// <summary>
    /// A call into the host's [vsyscall] page: the host kernel emulates it, seccomp refuses it (it does
    /// not come from the gadget) and the kernel has already emulated the <c>ret</c>. Undo that and
    /// report what a kernel without vsyscall reports: SEGV_MAPERR at the vsyscall address, rip on it,
    /// the return address still pushed. The Sentry may emulate the call or deliver the signal.
    /// </summary>
    private static SwitchResult VsyscallFault(CpuState state, ulong callAddress)
    {
        ref var r = ref state.Registers;
        if (callAddress < VsyscallPage || callAddress >= VsyscallPage + 0x1000)
        {
            return new SwitchResult(SwitchReason.Fault, LibC.SIGSEGV, LibC.SI_KERNEL, 0);
        }

        r.Rip = callAddress;
        r.Rsp -= 8;
        r.OrigRax = ulong.MaxValue;
        return new SwitchResult(SwitchReason.Fault, LibC.SIGSEGV, LibC.SEGV_MAPERR, callAddress, MemoryAccess.Execute);
    }

    private void WriteState(CpuState state)
    {
        Registers registers = state.Registers;
        registers.OrigRax = ulong.MaxValue;
        if (registers.Cs == 0 || registers.Ss == 0)
        {
            registers.Cs = thread.Template.Cs;
            registers.Ss = thread.Template.Ss;
        }

        thread.SetRegisters(registers);
        if (state.ExtendedStateDirty)
        {
            CheckExtendedStateSize(state);
            WriteExtendedState(state);
        }
    }

    private void WriteExtendedState(CpuState state)
    {
        fixed (byte* buffer = state.ExtendedState)
        {
            var io = new IoVec { Base = buffer, Length = (nuint)PtracePlatform.ExtendedStateSize };
            thread.Check(LibC.Ptrace(PtraceRequest.SetRegSet, thread.ThreadId, PtraceRequest.NtX86Xstate, (nint)(&io)), "PTRACE_SETREGSET");
        }

        state.ExtendedStateDirty = false;
    }

    private void ReadRegisters(CpuState state)
    {
        fixed (Registers* r = &state.Registers)
        {
            thread.Check(LibC.Ptrace(PtraceRequest.GetRegs, thread.ThreadId, 0, (nint)r), "PTRACE_GETREGS");
        }
    }

    private void GetSignalInfo(out SigInfo info)
    {
        fixed (SigInfo* p = &info)
        {
            thread.Check(LibC.Ptrace(PtraceRequest.GetSigInfo, thread.ThreadId, 0, (nint)p), "PTRACE_GETSIGINFO");
        }
    }

    private static void CheckExtendedStateSize(CpuState state)
    {
        if (state.ExtendedState.Length < PtracePlatform.ExtendedStateSize)
        {
            throw new ArgumentException(
                $"the CpuState's extended state holds {state.ExtendedState.Length} bytes; the XSAVE image needs {PtracePlatform.ExtendedStateSize} " +
                "(create it with new CpuState(PtracePlatform.ExtendedStateSize))", nameof(state));
        }
    }
}
