using System.Buffers.Binary;
using System.Runtime.InteropServices;
using AppKernel.Sentry.Abi;
using AppKernel.Syscalls;

namespace AppKernel.Sentry.Kernel;

// Signals: sending, choosing, default actions, the x86-64 rt_sigframe and rt_sigreturn.
internal sealed partial class KernelTask
{
    // The kernel's struct ucontext and rt_sigframe on x86-64.
    private const int UcontextSize = 304;
    private const int UcMcontextOffset = 40;
    private const int UcSigmaskOffset = 296;
    private const int SigframeSize = 8 + UcontextSize + 128; // pretcode + uc + siginfo
    private const ulong UC_FP_XSTATE = 1, UC_SIGCONTEXT_SS = 2, UC_STRICT_RESTORE_SS = 4;
    private const uint FP_XSTATE_MAGIC1 = 0x46505853, FP_XSTATE_MAGIC2 = 0x46505845;
    private const ulong UserEflagsMask = 0x50DD5; // AC OF DF TF SF ZF AF PF CF RF: what sigreturn may restore

    private ulong savedSignalMask;
    private bool restoreSavedMask;

    /// <summary>
    /// Replaces the signal mask for the rest of a syscall (rt_sigsuspend, and ppoll, pselect6 and
    /// epoll_pwait's sigmask argument), remembering the current one. End it with
    /// <see cref="EndTemporarySignalMask"/>: if a handler then runs, its frame saves the remembered
    /// mask, so the mask comes back with sigreturn, as Linux's saved_sigmask does.
    /// </summary>
    public void BeginTemporarySignalMask(ulong mask)
    {
        if (!restoreSavedMask)
        {
            savedSignalMask = SignalMask;
            restoreSavedMask = true;
        }

        SignalMask = mask & ~Signals.Unblockable;
    }

    /// <summary>
    /// Ends <see cref="BeginTemporarySignalMask"/>. When the syscall is interrupted by a signal the
    /// temporary mask stays until delivery: the handler's frame saves the original, or, when no
    /// handler runs, delivery puts it back. Otherwise the original comes back now.
    /// </summary>
    public void EndTemporarySignalMask(bool interrupted)
    {
        if (restoreSavedMask && !interrupted)
        {
            SignalMask = savedSignalMask;
            restoreSavedMask = false;
        }
    }

    /// <summary>The mask a signal frame saves: the one a temporary mask replaced, else the current one.</summary>
    private ulong MaskToSave => restoreSavedMask ? savedSignalMask : SignalMask;

    /// <summary>Delivery ran no handler: a temporary mask ends here.</summary>
    private void RestoreSavedMask()
    {
        if (restoreSavedMask)
        {
            SignalMask = savedSignalMask;
            restoreSavedMask = false;
        }
    }

    /// <summary>
    /// Takes the best pending signal not in <paramref name="blocked"/>: this thread's queue first,
    /// then the process's. The one way signals leave their queues (delivery, sigtimedwait,
    /// signalfd): a dequeued SIGALRM restarts a periodic ITIMER_REAL, and a POSIX timer's signal
    /// re-arms its timer, gets its overrun, or is dropped when stale.
    /// </summary>
    public bool DequeueSignal(ulong blocked, out SignalInfo info)
    {
        while (true)
        {
            if (!Pending.TryDequeue(blocked, out info))
            {
                if (!Group.SharedPending.TryDequeue(blocked, out info))
                {
                    return false;
                }

                if (info.Signo == Signals.SIGALRM)
                {
                    Group.Timers.SigalrmDequeued();
                }
            }

            if (info.TimerToken != 0)
            {
                bool deliver = Group.Timers.TimerSignalDequeued(ref info);
                info.TimerToken = 0;
                if (!deliver)
                {
                    continue;
                }
            }

            return true;
        }
    }

    /// <summary>True when a pending signal is not blocked (a blocking syscall must return for it).</summary>
    public bool HasDeliverableSignal() =>
        ((Pending.Pending | Group.SharedPending.Pending) & ~SignalMask) != 0;

    /// <summary>Queues a signal for this thread and gets its attention.</summary>
    public void SendSignal(in SignalInfo info)
    {
        if (info.Signo == Signals.SIGKILL)
        {
            Group.BeginExit(ExitStatus.Killed(Signals.SIGKILL));
            return;
        }

        PrepareJobControl(Group, info.Signo);

        if (Group.Ignores(info.Signo) && (SignalMask & Signals.Bit(info.Signo)) == 0)
        {
            return; // discarded at generation, as Linux does for ignored unblocked signals
        }

        Pending.Enqueue(info);
        Wake();
    }

    /// <summary>
    /// What sending a job-control signal does at once, before delivery (signal(7)): SIGCONT resumes a
    /// stopped process and cancels pending stop signals; a stop signal cancels a pending SIGCONT.
    /// </summary>
    public static void PrepareJobControl(ThreadGroup group, int signal)
    {
        const ulong stopSignals = (1UL << (Signals.SIGSTOP - 1)) | (1UL << (Signals.SIGTSTP - 1)) |
                                  (1UL << (Signals.SIGTTIN - 1)) | (1UL << (Signals.SIGTTOU - 1));
        if (signal == Signals.SIGCONT)
        {
            group.SharedPending.Discard(stopSignals);
            foreach (var task in group.Tasks)
            {
                task.Pending.Discard(stopSignals);
            }

            group.Continue();
        }
        else if ((Signals.Bit(signal) & stopSignals) != 0)
        {
            group.SharedPending.Discard(Signals.Bit(Signals.SIGCONT));
            foreach (var task in group.Tasks)
            {
                task.Pending.Discard(Signals.Bit(Signals.SIGCONT));
            }
        }
    }

    /// <summary>A signal the CPU raised for this thread: if blocked or ignored, Linux resets it to the default so the fault cannot loop.</summary>
    public void ForceSignal(in SignalInfo info)
    {
        int signal = info.Signo;
        var action = Group.Handlers.Get(signal);
        bool blocked = (SignalMask & Signals.Bit(signal)) != 0;
        if (blocked || action.Handler == Signals.SIG_IGN)
        {
            Group.Handlers.Set(signal, default);
            SignalMask &= ~Signals.Bit(signal);
        }

        Pending.Enqueue(info);
    }

    /// <summary>Before returning to the program: act on one pending signal and settle a syscall restart.</summary>
    private void DeliverSignals()
    {
        while (true)
        {
            if (!DequeueSignal(SignalMask, out var info))
            {
                if (restoreSavedMask)
                {
                    // No handler ran for the wait's temporary mask: settle the restart, put the
                    // caller's mask back, and look again under it (as Linux's restore_saved_sigmask).
                    SettleRestart(handlerRuns: false, 0);
                    RestoreSavedMask();
                    continue;
                }

                break;
            }

            int signal = info.Signo;
            var action = Group.Handlers.Get(signal);
            if (action.Handler == Signals.SIG_IGN)
            {
                continue;
            }

            if (action.Handler == Signals.SIG_DFL)
            {
                // Init is immune to default actions of signals from inside the sandbox; faults in it
                // (forced signals) and signals from the host still act.
                bool fault = Signals.IsSynchronous(signal) && info.Code > 0;
                if (Group.Pid == 1 && !fault && info.Pid != 0 && Signals.DefaultActionOf(signal) is not (DefaultAction.Ignore or DefaultAction.Continue))
                {
                    continue;
                }

                switch (Signals.DefaultActionOf(signal))
                {
                    case DefaultAction.Ignore or DefaultAction.Continue:
                        continue;
                    case DefaultAction.Stop:
                        Group.BeginStop(signal);
                        SettleRestart(handlerRuns: false, 0);
                        return;
                    case DefaultAction.Terminate or DefaultAction.Core:
                        // No core file is ever written, so WCOREDUMP stays clear (as on Linux with RLIMIT_CORE 0).
                        Group.BeginExit(ExitStatus.Killed(signal));
                        return;
                }
            }

            SettleRestart(handlerRuns: true, action.Flags);
            SetupFrame(info, action);
            return;
        }

        SettleRestart(handlerRuns: false, 0);
        RestoreSavedMask();
    }

    private void SettleRestart(bool handlerRuns, ulong actionFlags)
    {
        var restart = pendingRestart;
        if (restart == Errno.None)
        {
            return;
        }

        pendingRestart = Errno.None;
        ref var registers = ref Cpu.Registers;
        bool again = restart switch
        {
            Errno.ERESTARTNOINTR => true,
            Errno.ERESTARTSYS => !handlerRuns || (actionFlags & Signals.SA_RESTART) != 0,
            Errno.ERESTARTNOHAND or Errno.ERESTART_RESTARTBLOCK => !handlerRuns,
            _ => false,
        };

        if (!again)
        {
            registers.Rax = unchecked((ulong)-(long)Errno.EINTR);
            RestartBlock = null;
            return;
        }

        // Re-execute the syscall instruction (two bytes) with the original number.
        registers.Rip -= 2;
        registers.Rax = restart == Errno.ERESTART_RESTARTBLOCK ? 219UL /* restart_syscall */ : registers.OrigRax;
    }

    private void SetupFrame(in SignalInfo info, in LinuxSigaction action)
    {
        int signal = info.Signo;
        var mm = Mm;
        Context!.LoadExtendedState(Cpu);
        ref var r = ref Cpu.Registers;
        ulong sp = r.Rsp - 128; // the red zone belongs to the interrupted code
        bool onAltStack = IsOnAltStack(r.Rsp);
        bool switchStack = (action.Flags & Signals.SA_ONSTACK) != 0 && (AltStack.Flags & Signals.SS_DISABLE) == 0 && !onAltStack;
        var savedAltStack = AltStack;
        if (switchStack)
        {
            sp = AltStack.Sp + AltStack.Size;
        }

        int xstateSize = Cpu.ExtendedState.Length;
        sp -= (ulong)xstateSize + 4;
        sp &= ~63UL;
        ulong fpstate = sp;
        sp -= SigframeSize;
        sp = (sp & ~15UL) - 8;
        ulong frame = sp;

        try
        {
            // The XSAVE image, with the software bytes that mark it as a full xstate frame.
            var image = Cpu.ExtendedState.AsSpan();
            Span<byte> swBytes = stackalloc byte[48];
            BinaryPrimitives.WriteUInt32LittleEndian(swBytes, FP_XSTATE_MAGIC1);
            BinaryPrimitives.WriteUInt32LittleEndian(swBytes[4..], (uint)xstateSize + 4);
            BinaryPrimitives.WriteUInt64LittleEndian(swBytes[8..], ExtendedState.Features);
            BinaryPrimitives.WriteUInt32LittleEndian(swBytes[16..], (uint)xstateSize);
            mm.Write(fpstate, image[..464]);
            mm.Write(fpstate + 464, swBytes);
            mm.Write(fpstate + 512, image[512..]);
            mm.WriteValue(fpstate + (ulong)xstateSize, FP_XSTATE_MAGIC2);

            Span<byte> uc = stackalloc byte[UcontextSize];
            uc.Clear();
            BinaryPrimitives.WriteUInt64LittleEndian(uc, UC_FP_XSTATE | UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS);
            BinaryPrimitives.WriteUInt64LittleEndian(uc[16..], savedAltStack.Sp);
            BinaryPrimitives.WriteInt32LittleEndian(uc[24..], onAltStack ? Signals.SS_ONSTACK : savedAltStack.Flags);
            BinaryPrimitives.WriteUInt64LittleEndian(uc[32..], savedAltStack.Size);
            WriteSigcontext(uc.Slice(UcMcontextOffset, 256), r, fpstate, info);
            BinaryPrimitives.WriteUInt64LittleEndian(uc[UcSigmaskOffset..], MaskToSave);

            mm.WriteValue(frame, action.Restorer);
            mm.Write(frame + 8, uc);
            mm.Write(frame + 8 + UcontextSize, MemoryMarshal.AsBytes(new ReadOnlySpan<SignalInfo>(in info)));
        }
        catch (ErrnoException)
        {
            // The frame cannot be written (bad stack): Linux kills with SIGSEGV.
            Group.Handlers.Set(Signals.SIGSEGV, default);
            Group.BeginExit(ExitStatus.Killed(Signals.SIGSEGV));
            return;
        }

        if (switchStack && (AltStack.Flags & unchecked((int)Signals.SS_AUTODISARM)) != 0)
        {
            AltStack = new LinuxStack { Flags = Signals.SS_DISABLE };
        }

        r.Rsp = frame;
        r.Rip = action.Handler;
        r.Rdi = (ulong)signal;
        r.Rsi = frame + 8 + UcontextSize;
        r.Rdx = frame + 8;
        r.Rax = 0;
        r.Eflags &= ~(0x400UL | 0x100UL | 0x10000UL); // DF, TF, RF cleared for the handler

        // The handler starts with a clean FP state, as Linux gives it.
        ExtendedState.WriteInitial(Cpu.ExtendedState);
        Cpu.ExtendedStateDirty = true;

        ulong blocked = action.Mask;
        if ((action.Flags & Signals.SA_NODEFER) == 0)
        {
            blocked |= Signals.Bit(signal);
        }

        // The handler runs with the current (possibly temporary) mask plus its own; the frame holds
        // the mask sigreturn restores.
        restoreSavedMask = false;
        SignalMask = (SignalMask | blocked) & ~Signals.Unblockable;
        if ((action.Flags & Signals.SA_RESETHAND) != 0)
        {
            Group.Handlers.Set(signal, default);
        }
    }

    private static void WriteSigcontext(Span<byte> sc, in AppKernel.Platform.Registers r, ulong fpstate, in SignalInfo info)
    {
        ulong[] values =
        [
            r.R8, r.R9, r.R10, r.R11, r.R12, r.R13, r.R14, r.R15,
            r.Rdi, r.Rsi, r.Rbp, r.Rbx, r.Rdx, r.Rax, r.Rcx, r.Rsp, r.Rip, r.Eflags,
        ];
        for (int i = 0; i < values.Length; i++)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(sc[(i * 8)..], values[i]);
        }

        BinaryPrimitives.WriteUInt16LittleEndian(sc[144..], (ushort)r.Cs);
        BinaryPrimitives.WriteUInt16LittleEndian(sc[146..], (ushort)r.Gs);
        BinaryPrimitives.WriteUInt16LittleEndian(sc[148..], (ushort)r.Fs);
        BinaryPrimitives.WriteUInt16LittleEndian(sc[150..], (ushort)r.Ss);
        if (info.Signo is Signals.SIGSEGV or Signals.SIGBUS)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(sc[152..], 4 | (info.Code == Signals.SEGV_ACCERR ? 1UL : 0)); // err: user, protection
            BinaryPrimitives.WriteUInt64LittleEndian(sc[160..], 14); // trapno: page fault
            BinaryPrimitives.WriteUInt64LittleEndian(sc[176..], info.Address); // cr2
        }

        BinaryPrimitives.WriteUInt64LittleEndian(sc[184..], fpstate);
    }

    /// <summary>rt_sigreturn: restores what <see cref="SetupFrame"/> saved, including what the handler changed in it.</summary>
    public SyscallResult SignalReturn()
    {
        var mm = Mm;
        ref var r = ref Cpu.Registers;
        ulong frame = r.Rsp - 8; // the handler's ret popped pretcode
        Span<byte> uc = stackalloc byte[UcontextSize];
        try
        {
            mm.Read(frame + 8, uc);
        }
        catch (ErrnoException)
        {
            ForceSignal(SignalInfo.Kernel(Signals.SIGSEGV));
            return SyscallResult.NoReturn;
        }

        var sc = uc.Slice(UcMcontextOffset, 256);
        static ulong Word(ReadOnlySpan<byte> context, int index) => BinaryPrimitives.ReadUInt64LittleEndian(context[(index * 8)..]);
        r.R8 = Word(sc, 0); r.R9 = Word(sc, 1); r.R10 = Word(sc, 2); r.R11 = Word(sc, 3);
        r.R12 = Word(sc, 4); r.R13 = Word(sc, 5); r.R14 = Word(sc, 6); r.R15 = Word(sc, 7);
        r.Rdi = Word(sc, 8); r.Rsi = Word(sc, 9); r.Rbp = Word(sc, 10); r.Rbx = Word(sc, 11);
        r.Rdx = Word(sc, 12); r.Rax = Word(sc, 13); r.Rcx = Word(sc, 14); r.Rsp = Word(sc, 15); r.Rip = Word(sc, 16);
        r.Eflags = (r.Eflags & ~UserEflagsMask) | (Word(sc, 17) & UserEflagsMask);
        r.OrigRax = ulong.MaxValue; // no syscall to restart
        ulong fpstate = BinaryPrimitives.ReadUInt64LittleEndian(sc[184..]);
        SignalMask = BinaryPrimitives.ReadUInt64LittleEndian(uc[UcSigmaskOffset..]) & ~Signals.Unblockable;

        if (fpstate != 0)
        {
            try
            {
                Span<byte> image = Cpu.ExtendedState;
                mm.Read(fpstate, image[..464]);
                image.Slice(464, 48).Clear();
                mm.Read(fpstate + 512, image[512..]);
                Cpu.ExtendedStateDirty = true;
            }
            catch (ErrnoException)
            {
                ForceSignal(SignalInfo.Kernel(Signals.SIGSEGV));
                return SyscallResult.NoReturn;
            }
        }
        else
        {
            ExtendedState.WriteInitial(Cpu.ExtendedState);
            Cpu.ExtendedStateDirty = true;
        }

        // uc_stack: the altstack the handler's context names becomes current again.
        var stack = new LinuxStack
        {
            Sp = BinaryPrimitives.ReadUInt64LittleEndian(uc[16..]),
            Flags = BinaryPrimitives.ReadInt32LittleEndian(uc[24..]),
            Size = BinaryPrimitives.ReadUInt64LittleEndian(uc[32..]),
        };
        if (!IsOnAltStack(r.Rsp))
        {
            AltStack = stack with { Flags = stack.Flags & ~Signals.SS_ONSTACK };
        }

        return SyscallResult.NoReturn;
    }

    /// <summary>True when <paramref name="sp"/> is on the alternate signal stack.</summary>
    public bool IsOnAltStack(ulong sp) =>
        (AltStack.Flags & Signals.SS_DISABLE) == 0 && sp > AltStack.Sp && sp - AltStack.Sp <= AltStack.Size;
}
