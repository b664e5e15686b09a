using AppKernel.Platform;
using AppKernel.Sentry.Abi;
using AppKernel.Sentry.Memory;
using AppKernel.Sentry.Vfs;
using AppKernel.Syscalls;
using AppKernel.Vfs;

namespace AppKernel.Sentry.Kernel;

/// <summary>
/// A task: one program thread. It runs on its own dedicated host thread (ptrace accepts
/// requests only from the tracer thread), switches into the program through the platform, and
/// is itself the <see cref="ISyscallContext"/> its syscall handlers see, so a syscall allocates nothing.
/// </summary>
internal sealed partial class KernelTask : ISyscallContext, ITaskInfo, IEventListener
{
    private SyscallArguments arguments;
    private IExecutionContext? context;
    private readonly ManualResetEventSlim wake = new(false);
    private volatile bool killed;

    public KernelTask(Kernel kernel, ThreadGroup group, int tid, FdTable fds, FsContext fs, Credentials credentials)
    {
        Kernel = kernel;
        Group = group;
        Tid = tid;
        Fds = fds;
        Fs = fs;
        Credentials = credentials;
        Pending = new SignalQueue(group.SignalWaiters);
        Cpu = new CpuState(ExtendedState.Size);
        ExtendedState.WriteInitial(Cpu.ExtendedState);
        Cpu.ExtendedStateDirty = true;
    }

    /// <summary>The task whose host thread is running (procfs's "self").</summary>
    [ThreadStatic]
    private static KernelTask? current;

    public static KernelTask? Current => current;

    public Kernel Kernel { get; }

    public ThreadGroup Group { get; }

    /// <summary>The thread id; a thread that execs in a multithreaded process takes over the leader's.</summary>
    public int Tid { get; set; }

    /// <summary>When the task was created, on the kernel's monotonic clock (/proc/PID/task/TID/stat's start time).</summary>
    public long StartTime { get; } = AppKernel.Sentry.Kernel.Kernel.Now;

    public CpuState Cpu { get; }

    /// <summary>
    /// The platform context running this thread (created on the task's own host thread). Replacing
    /// it keeps the thread's CPU account whole (see <see cref="ContextReplaced"/>).
    /// </summary>
    public IExecutionContext? Context
    {
        get => context;
        set => ContextReplaced(value);
    }

    public MemoryManager Mm => Group.Memory ?? throw ErrnoException.Of(Errno.EFAULT);

    public FdTable Fds { get; set; }

    public FsContext Fs { get; set; }

    public Credentials Credentials { get; set; }

    /// <summary>Blocked signals (sigprocmask).</summary>
    public ulong SignalMask { get; set; }

    /// <summary>Signals pending for this thread only (queuing one tells the process's <see cref="ThreadGroup.SignalWaiters"/>).</summary>
    public SignalQueue Pending { get; }

    /// <summary>The alternate signal stack (sigaltstack).</summary>
    public LinuxStack AltStack = new() { Flags = Signals.SS_DISABLE };

    /// <summary>CLONE_CHILD_CLEARTID / set_tid_address: zeroed and futex-woken at exit.</summary>
    public ulong ClearChildTid { get; set; }

    public ulong RobustList { get; set; }

    public ulong RobustListLength { get; set; }

    /// <summary>The thread's name (comm): 15 bytes at most.</summary>
    public string Name { get; set; } = "";

    /// <summary>The exit code of this thread (exit(2)); the process's comes from exit_group or the last thread.</summary>
    public int ExitCode { get; set; }

    /// <summary>The host thread that runs this task.</summary>
    public Thread? HostThread { get; set; }

    public bool Killed => killed;

    /// <summary>prctl(PR_SET_PDEATHSIG): the signal this thread gets when its parent dies.</summary>
    public int ParentDeathSignal { get; set; }

    /// <summary>prctl(PR_SET_NO_NEW_PRIVS): execve never grants privileges (it never does here; the flag is reported).</summary>
    public bool NoNewPrivileges { get; set; }

    /// <summary>This thread's UTS namespace (host and domain names); clone shares it unless CLONE_NEWUTS.</summary>
    public UtsNamespace? Uts { get; set; }

    /// <summary>Scheduling policy, priority and nice value (sched_setscheduler, setpriority).</summary>
    public SchedulingAttributes Scheduling { get; set; } = SchedulingAttributes.Default;

    /// <summary>Set by a syscall that must be restarted on its own terms after a signal (nanosleep's remaining time).</summary>
    public Func<KernelTask, SyscallResult>? RestartBlock { get; set; }

    // ISyscallContext: the syscall in flight.
    public int Number { get; set; }

    public ref SyscallArguments Arguments => ref arguments;

    ITaskInfo ISyscallContext.Task => this;

    public IProcessMemory Memory => Mm;

    // ITaskInfo: what plugins may know.
    public int Pid => Group.Pid;

    public int ParentPid => Group.Parent?.Pid ?? 0;

    public int Uid => Credentials.EffectiveUid;

    public int Gid => Credentials.EffectiveGid;

    public string ExecutablePath => Group.ExecutablePath;

    public string SandboxId => Kernel.Id;

    /// <summary>Path resolution from the working directory.</summary>
    public PathContext PathContext => new(Credentials, Fs.Root, Fs.Cwd, this);

    /// <summary>Path resolution relative to <paramref name="dirfd"/> (AT_FDCWD or an open directory), as the *at syscalls do.</summary>
    public PathContext PathContextAt(int dirfd, string path)
    {
        if (dirfd == LinuxConstants.AT_FDCWD || (path.Length > 0 && path[0] == '/'))
        {
            return PathContext;
        }

        var description = Fds.Get(dirfd);
        if (description.Path is not { } start)
        {
            throw ErrnoException.Of(Errno.ENOTDIR);
        }

        if (path.Length > 0 && !start.Inode.GetAttributes().Mode.IsDirectory())
        {
            throw ErrnoException.Of(Errno.ENOTDIR);
        }

        return new PathContext(Credentials, Fs.Root, start, this);
    }

    /// <summary>Tells the task to exit as soon as it can (group exit, SIGKILL).</summary>
    public void Kill()
    {
        killed = true;
        Wake();
    }

    /// <summary>Gets a blocked task going again, or a running one back into the Sentry.</summary>
    public void Wake()
    {
        wake.Set();
        Context?.Interrupt();
    }

    void IEventListener.OnEvents(PollEvents events) => wake.Set();

    /// <summary>
    /// Blocks until <paramref name="ready"/> holds. Returns false when <paramref name="deadline"/>
    /// (a <see cref="Kernel.Now"/> value, or -1 for none) passes; throws ERESTARTSYS when a signal
    /// is to be handled or the task is killed.
    /// </summary>
    public bool WaitUntil(WaitQueue? queue, PollEvents mask, Func<bool> ready, long deadline = -1)
    {
        if (ready())
        {
            return true;
        }

        queue?.Register(this, mask);
        try
        {
            while (true)
            {
                wake.Reset();
                if (ready())
                {
                    return true;
                }

                if (killed || HasDeliverableSignal())
                {
                    throw ErrnoException.Of(Errno.ERESTARTSYS);
                }

                if (deadline >= 0)
                {
                    long left = deadline - Kernel.Now;
                    if (left <= 0)
                    {
                        return false;
                    }

                    wake.Wait(TimeSpan.FromTicks(Math.Max(1, left / 100)));
                }
                else
                {
                    wake.Wait();
                }
            }
        }
        finally
        {
            queue?.Unregister(this);
        }
    }

    public override string ToString() => $"task {Tid} ({Name})";
}
