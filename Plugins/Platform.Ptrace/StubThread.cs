using AppKernel.Platform.Ptrace.Native;
using AppKernel.Platform.Ptrace.Stub;

namespace AppKernel.Platform.Ptrace;

/// <summary>
/// One thread of a stub process, and the ptrace operations on it. Every method must be called
/// on the thread's tracer (the host thread that seized it) while the stub thread is stopped.
/// </summary>
internal sealed unsafe class StubThread(int processId, int threadId)
{
    private const ulong TrapFlag = 0x100;

    /// <summary>The host process id (thread group) of the stub.</summary>
    public int ProcessId { get; } = processId;

    /// <summary>The host thread id.</summary>
    public int ThreadId { get; } = threadId;

    /// <summary>True for the process's first thread, whose exit the kernel reports only after all others.</summary>
    public bool IsLeader => ProcessId == ThreadId;

    /// <summary>Registers with valid user segment selectors, the base of every injection.</summary>
    public Registers Template;

    /// <summary>Set once the thread's exit has been collected by <c>waitpid</c>.</summary>
    public volatile bool Reaped;

    /// <summary>For a leader: reaps the process's dead non-leader threads without blocking (set by its address space).</summary>
    public Action? ReapDeadSiblings { get; set; }

    /// <summary>Waits for the next stop or the end of the thread.</summary>
    public WaitStatus Wait() => IsLeader ? WaitLeader() : WaitBlocking();

    /// <summary>Reads the general registers.</summary>
    public void GetRegisters(out Registers registers)
    {
        fixed (Registers* r = &registers)
        {
            Check(LibC.Ptrace(PtraceRequest.GetRegs, ThreadId, 0, (nint)r), "PTRACE_GETREGS");
        }
    }

    /// <summary>Writes the general registers.</summary>
    public void SetRegisters(in Registers registers)
    {
        fixed (Registers* r = &registers)
        {
            Check(LibC.Ptrace(PtraceRequest.SetRegs, ThreadId, 0, (nint)r), "PTRACE_SETREGS");
        }
    }

    /// <summary>Resumes the thread with <paramref name="request"/> (PTRACE_CONT, PTRACE_SYSEMU), suppressing any pending signal.</summary>
    public void Resume(long request)
    {
        Check(LibC.Ptrace(request, ThreadId, 0, 0), "resume");
    }

    /// <summary>
    /// Runs host syscall <paramref name="number"/> in the stub: points rip at the gadget, lets the
    /// thread run until the int3 after it, and returns rax. General registers are left changed:
    /// the next <see cref="PtraceExecutionContext.Switch"/> writes the program's back anyway, and the
    /// FP/SSE/AVX state is never touched. For clone, <paramref name="newThreadId"/> is the new thread.
    /// </summary>
    public long Inject(long number, ulong a0, ulong a1, ulong a2, ulong a3, ulong a4, ulong a5, out int newThreadId)
    {
        newThreadId = 0;
        Registers r = Template;
        r.Rip = StubLayout.Gadget;
        r.Rax = (ulong)number;
        r.OrigRax = ulong.MaxValue;
        r.Rdi = a0;
        r.Rsi = a1;
        r.Rdx = a2;
        r.R10 = a3;
        r.R8 = a4;
        r.R9 = a5;
        r.Eflags &= ~TrapFlag;
        SetRegisters(r);
        Resume(PtraceRequest.Cont);
        while (true)
        {
            var status = Wait();
            if (!status.Stopped)
            {
                if (number == SeccompFilter.SysExit && !IsLeader)
                {
                    return 0; // the thread ended as asked
                }

                throw Died(status);
            }

            if (status.Event == PtraceRequest.EventClone)
            {
                ulong message;
                Check(LibC.Ptrace(PtraceRequest.GetEventMsg, ThreadId, 0, (nint)(&message)), "PTRACE_GETEVENTMSG");
                newThreadId = (int)message;
                Resume(PtraceRequest.Cont);
                continue;
            }

            if (status.StopSignal == LibC.SIGTRAP && status.Event == 0)
            {
                GetRegisters(out r);
                if (r.Rip == StubLayout.GadgetTrap)
                {
                    return (long)r.Rax;
                }

                throw new InvalidOperationException($"stub thread {ThreadId} trapped at 0x{r.Rip:x} during an injected syscall {number}");
            }

            if (status.Event == 0 && status.StopSignal is LibC.SIGSEGV or LibC.SIGBUS or LibC.SIGILL or LibC.SIGFPE)
            {
                throw new InvalidOperationException($"stub thread {ThreadId} got signal {status.StopSignal} during an injected syscall {number}");
            }

            // A pending interrupt signal, a host signal or a group stop: suppress it and go on.
            Resume(PtraceRequest.Cont);
        }
    }

    /// <summary>Runs a host syscall in the stub and returns rax.</summary>
    public long Inject(long number, ulong a0 = 0, ulong a1 = 0, ulong a2 = 0, ulong a3 = 0, ulong a4 = 0, ulong a5 = 0) =>
        Inject(number, a0, a1, a2, a3, a4, a5, out _);

    /// <summary>Waits for a stop of this thread, retrying EINTR (the runtime signals its own threads).</summary>
    public WaitStatus WaitBlocking()
    {
        int status;
        while (true)
        {
            int result = LibC.WaitPid(ThreadId, &status, LibC.WALL);
            if (result == ThreadId)
            {
                var decoded = new WaitStatus(status);
                if (!decoded.Stopped)
                {
                    Reaped = true;
                }

                return decoded;
            }

            int errno = LibC.Errno;
            if (result < 0 && errno == LibC.EINTR)
            {
                continue;
            }

            Reaped = true;
            throw new StubProcessExitedException(ProcessId, ThreadId, errno == LibC.ECHILD ? "is gone (already reaped)" : $"cannot be waited for: {LibC.Describe(errno)}");
        }
    }

    /// <summary>
    /// Waits for the leader. The kernel reports a dead leader only once every other thread of the
    /// process has been reaped, and those are reaped by the host threads that trace them; if the
    /// process died while they are busy elsewhere, a watchdog reaps them so this wait cannot hang.
    /// </summary>
    public WaitStatus WaitLeader()
    {
        using var watchdog = new Timer(static self => ((StubThread)self!).CheckLeaderDeath(), this, 100, 100);
        return WaitBlocking();
    }

    /// <summary>The exception for a thread whose wait reported its end.</summary>
    public StubProcessExitedException Died(WaitStatus status) => new(ProcessId, ThreadId, status.DescribeEnd());

    /// <summary>Throws if a ptrace request failed; a vanished tracee becomes <see cref="StubProcessExitedException"/>.</summary>
    public void Check(long result, string request)
    {
        if (result != -1)
        {
            return;
        }

        int errno = LibC.Errno;
        if (errno == LibC.ESRCH)
        {
            // The tracee is not stopped any more: it is being killed. Collect how it ended.
            if (!IsLeader && !Reaped)
            {
                var status = WaitBlocking();
                if (!status.Stopped)
                {
                    throw Died(status);
                }
            }

            throw new StubProcessExitedException(ProcessId, ThreadId, $"vanished during {request}");
        }

        throw new InvalidOperationException($"ptrace {request} on stub thread {ThreadId} failed: {LibC.Describe(errno)}");
    }

    /// <summary>The scheduler state letter of a host thread (R, S, D, t, Z, ...), or 'X' when it is gone.</summary>
    public static char SchedulerState(int processId, int threadId)
    {
        try
        {
            string stat = File.ReadAllText($"/proc/{processId}/task/{threadId}/stat");
            int close = stat.LastIndexOf(')');
            return close < 0 || close + 2 >= stat.Length ? 'X' : stat[close + 2];
        }
        catch (IOException)
        {
            return 'X';
        }
    }

    private void CheckLeaderDeath()
    {
        if (SchedulerState(ProcessId, ThreadId) is 'Z' or 'X')
        {
            ReapDeadSiblings?.Invoke();
        }
    }
}
