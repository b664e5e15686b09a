using System.Diagnostics;
using AppKernel.Platform;
using AppKernel.Sentry.Abi;
using AppKernel.Syscalls;
using AppKernel.Vfs;

namespace AppKernel.Sentry.Kernel;

// The run loop: switch into the program, handle what stopped it, deliver signals, repeat.
internal sealed partial class KernelTask
{
    private const int RepeatedFaultLimit = 3;
    private Errno pendingRestart;
    private ulong lastFaultAddress;
    private ulong lastFaultRip;
    private int repeatedFaults;

    /// <summary>
    /// Runs the task on a host thread: one of the kernel's pool where the platform allows reuse
    /// (<see cref="PlatformCapabilities.ReusableTaskThreads"/>), else a thread of its own;
    /// <paramref name="start"/> runs on it first (the initial execve or the clone's setup).
    /// </summary>
    public void Start(Action start)
    {
        if ((Kernel.Platform.Capabilities & PlatformCapabilities.ReusableTaskThreads) != 0)
        {
            Kernel.TaskThreads.Run($"appkernel task {Kernel.Id}/{Tid}", () => Main(start));
            return;
        }

        var thread = new Thread(() => Main(start), 1 << 20)
        {
            IsBackground = true,
            Name = $"appkernel task {Kernel.Id}/{Tid}",
        };
        HostThread = thread;
        thread.Start();
    }

    private void Main(Action start)
    {
        current = this;
        HostThread = Thread.CurrentThread;
        RecordHostThread();
        try
        {
            start();
            Loop();
        }
        catch (ErrnoException) when (killed)
        {
            // Killed while starting: nothing to report.
        }
        catch (Exception e)
        {
            Kernel.Fail(this, e);
        }
        finally
        {
            ExitTask();
            current = null; // a pooled thread may run another task next
        }
    }

    private void Loop()
    {
        while (true)
        {
            if (killed)
            {
                return;
            }

            DeliverSignals();
            if (Group.Stopped)
            {
                ParkWhileStopped();
                continue;
            }

            if (killed)
            {
                return;
            }

            var result = Context!.Switch(Cpu);
            switch (result.Reason)
            {
                case SwitchReason.Syscall:
                    HandleSyscall();
                    break;
                case SwitchReason.Fault:
                    HandleFault(result);
                    break;
                case SwitchReason.Signal:
                    ForceSignal(new SignalInfo { Signo = result.Signal, Code = result.SignalCode, Address = result.FaultAddress });
                    break;
                case SwitchReason.Interrupted:
                    break;
            }
        }
    }

    /// <summary>A job-control stop: the thread sleeps (holding no CPU) until SIGCONT or death.</summary>
    private void ParkWhileStopped()
    {
        var group = Group;
        while (group.Stopped && !killed)
        {
            wake.Reset();
            group.StopQueue.Register(this, PollEvents.All);
            try
            {
                if (group.Stopped && !killed)
                {
                    wake.Wait(100);
                }
            }
            finally
            {
                group.StopQueue.Unregister(this);
            }
        }
    }

    private void HandleSyscall()
    {
        // Progress: the same fault again later (after another fork, say) is a new fault.
        lastFaultAddress = 0;
        repeatedFaults = 0;
        ref var registers = ref Cpu.Registers;
        Number = (int)(long)registers.OrigRax;
        arguments.A0 = registers.Rdi;
        arguments.A1 = registers.Rsi;
        arguments.A2 = registers.Rdx;
        arguments.A3 = registers.R10;
        arguments.A4 = registers.R8;
        arguments.A5 = registers.R9;
        var trace = Kernel.Strace;
        var before = trace?.Begin(this);
        var audit = Kernel.Audit;
        int number = Number;
        var audited = audit?.Begin(this);
        long started = trace is { Times: true } ? Stopwatch.GetTimestamp() : 0;
        var result = Kernel.Dispatcher.Dispatch(this);
        trace?.End(this, before, result, started == 0 ? default : Stopwatch.GetElapsedTime(started));
        audit?.End(number, this, audited, result);
        if (result.IsNoReturn)
        {
            return;
        }

        long raw = result.Raw;
        if (raw is <= -(long)Errno.ERESTARTSYS and >= -(long)Errno.ERESTART_RESTARTBLOCK)
        {
            // Decided at signal delivery: restart, or EINTR if a handler runs.
            pendingRestart = (Errno)(-raw);
            registers.Rax = unchecked((ulong)-(long)Errno.EINTR);
            return;
        }

        registers.Rax = unchecked((ulong)raw);
    }

    private void HandleFault(in SwitchResult result)
    {
        int code = Signals.SEGV_MAPERR;
        int signal = result.Signal == 0 ? Signals.SIGSEGV : result.Signal;
        bool resolved;
        try
        {
            int decided = Signals.SIGSEGV;
            var mm = Group.Memory;
            long spurious = mm?.SpuriousFaults ?? 0;
            resolved = mm is not null && mm.HandleFault(result.FaultAddress, result.Access, out decided, out code);
            if (resolved && mm!.SpuriousFaults != spurious)
            {
                Kernel.Log.LogSpuriousFault(Tid, result.FaultAddress, Cpu.Registers.Rip, result.Access);
            }

            if (!resolved && decided == Signals.SIGBUS)
            {
                signal = Signals.SIGBUS;
            }
        }
        catch (ErrnoException e) when (e.Errno == Errno.ENOMEM)
        {
            // No memory to back the page: the sandbox's OOM killer takes this process, as Linux's would.
            Kernel.OutOfMemory(Group);
            return;
        }

        if (resolved)
        {
            // The fault was resolved; the same fault again and again means the mapping did not take.
            if (result.FaultAddress == lastFaultAddress && Cpu.Registers.Rip == lastFaultRip)
            {
                if (++repeatedFaults < RepeatedFaultLimit)
                {
                    return;
                }

                code = Signals.SEGV_ACCERR;
            }
            else
            {
                lastFaultAddress = result.FaultAddress;
                lastFaultRip = Cpu.Registers.Rip;
                repeatedFaults = 0;
                return;
            }
        }
        else if (result.Signal == Signals.SIGBUS)
        {
            code = result.SignalCode;
        }

        repeatedFaults = 0;
        Kernel.Log.LogFaultSignal(Tid, result.FaultAddress, Cpu.Registers.Rip, code);
        ForceSignal(SignalInfo.Fault(signal, code, result.FaultAddress));
    }

    /// <summary>The thread leaves: clear_child_tid, release, and let the process finish if it was the last.</summary>
    private void ExitTask()
    {
        try
        {
            if (Group.Memory is { } robustMm)
            {
                RobustFutexes.Release(this, robustMm);
            }

            if (ClearChildTid != 0 && Group.Memory is { } mm && !Group.Exiting)
            {
                try
                {
                    mm.WriteValue(ClearChildTid, 0);
                    Kernel.Futexes.Wake(mm, ClearChildTid, 1, uint.MaxValue);
                }
                catch (ErrnoException)
                {
                    // A bad clear_child_tid pointer is ignored, as on Linux.
                }
            }
        }
        finally
        {
            VforkDone?.Set();
            Context?.Dispose();
            Context = null;
            Fs = null!;
            Fds.RemoveUser();
            Kernel.Pids.RemoveTask(this);
            Group.RemoveTask(this);
            wake.Dispose();
        }
    }
}
