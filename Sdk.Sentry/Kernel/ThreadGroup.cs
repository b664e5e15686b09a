using AppKernel.Sentry.Abi;
using AppKernel.Sentry.Kernel.Timers;
using AppKernel.Sentry.Memory;
using AppKernel.Vfs;

namespace AppKernel.Sentry.Kernel;

/// <summary>The life of a process: running, exited and waiting to be reaped (a zombie), or gone.</summary>
internal enum ProcessState
{
    Running,
    Zombie,
    Reaped,
}

/// <summary>
/// A process: the tasks that share a pid (thread group), its memory, signal dispositions,
/// shared pending signals, limits, process group and session, its children, job-control
/// state and its exit status. The process tree is guarded by <see cref="PidNamespace.Gate"/>.
/// </summary>
internal sealed class ThreadGroup
{
    private readonly List<KernelTask> tasks = new();
    private readonly TaskCompletionSource<ExitStatus> exited = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public ThreadGroup(Kernel kernel, int pid, ThreadGroup? parent, SignalHandlers handlers, ResourceLimits limits)
    {
        Kernel = kernel;
        Pid = pid;
        Parent = parent;
        Handlers = handlers;
        Limits = limits;
        ProcessGroup = parent?.ProcessGroup ?? pid;
        Session = parent?.Session ?? pid;
        ControllingTerminal = parent?.ControllingTerminal;
        SharedPending = new SignalQueue(SignalWaiters);
        Timers = new ProcessTimers(this);
    }

    public Kernel Kernel { get; }

    public int Pid { get; }

    /// <summary>The parent process; null for processes the host started (the host reaps them).</summary>
    public ThreadGroup? Parent { get; set; }

    /// <summary>Children, running or zombie (guarded by the PID namespace's gate).</summary>
    public List<ThreadGroup> Children { get; } = new();

    /// <summary>The signal the parent gets when this process ends (SIGCHLD for fork; clone chooses).</summary>
    public int ExitSignal { get; set; } = Signals.SIGCHLD;

    public ProcessState State { get; set; } = ProcessState.Running;

    public object Gate => tasks;

    public MemoryManager? Memory { get; set; }

    public SignalHandlers Handlers { get; set; }

    public ResourceLimits Limits { get; }

    public int ProcessGroup { get; set; }

    public int Session { get; set; }

    /// <summary>The controlling terminal (a pseudo-terminal of the sandbox), inherited by fork, dropped by setsid; guarded by the pid gate.</summary>
    public Fs.Dev.Pts.Terminal? ControllingTerminal { get; set; }

    public string ExecutablePath { get; set; } = "";

    /// <summary>
    /// /proc/PID/oom_score_adj (-1000 to 1000), kept and inherited as Linux does. The sandbox's
    /// own memory limit, not an OOM killer, decides what happens when memory runs out.
    /// </summary>
    public int OomScoreAdj { get; set; }

    /// <summary>The lowest <see cref="OomScoreAdj"/> an unprivileged write may set (Linux's oom_score_adj_min).</summary>
    public int OomScoreAdjMin { get; set; }

    /// <summary>/proc/PID/io's counters, shared by the process's threads.</summary>
    public IoAccounting Io { get; } = new();

    /// <summary>When the process was created, on the kernel's monotonic clock (/proc/PID/stat's start time).</summary>
    public long StartTime { get; } = AppKernel.Sentry.Kernel.Kernel.Now;

    /// <summary>True once the process called execve (setpgid on it then gives EACCES).</summary>
    public bool HasExecuted { get; set; }

    /// <summary>prctl(PR_SET_DUMPABLE).</summary>
    public bool Dumpable { get; set; } = true;

    /// <summary>prctl(PR_SET_CHILD_SUBREAPER): orphaned descendants are reparented here rather than to init.</summary>
    public bool ChildSubreaper { get; set; }

    /// <summary>personality(2) flags.</summary>
    public int Personality { get; set; }

    /// <summary>The process's timers and CPU account (itimers, POSIX timers, RLIMIT_CPU); never inherited by fork.</summary>
    public ProcessTimers Timers { get; }

    /// <summary>Signals pending for the whole process.</summary>
    public SignalQueue SharedPending { get; }

    /// <summary>
    /// Told whenever a signal becomes pending for the process or any of its threads (Linux's
    /// sighand->signalfd_wqh): signalfd readers, poll and epoll wait here.
    /// </summary>
    public AppKernel.Vfs.WaitQueue SignalWaiters { get; } = new();

    /// <summary>Announces changes of this process's children (exit, stop, continue) to waiters in wait4/waitid.</summary>
    public WaitQueue ChildEvents { get; } = new();

    /// <summary>Counts child events, so a waiter can tell that something changed.</summary>
    public int ChildEventGeneration;

    // Job control: a group stop parks every task until SIGCONT.
    public bool Stopped { get; private set; }

    public int StopSignal { get; private set; }

    /// <summary>The stop (or continue) has been reported by wait with WUNTRACED (or WCONTINUED).</summary>
    public bool StopReported { get; set; }

    public bool ContinuedPending { get; set; }

    /// <summary>Where stopped tasks wait to be continued.</summary>
    public WaitQueue StopQueue { get; } = new();

    /// <summary>The status the process ends with, once a group exit began.</summary>
    public ExitStatus? ExitStatus { get; private set; }

    public bool Exiting => ExitStatus is not null;

    /// <summary>Completes when every task has exited and the process's resources are released.</summary>
    public Task<ExitStatus> Exited => exited.Task;

    /// <summary>The task whose tid equals the pid.</summary>
    public KernelTask? Leader { get; set; }

    /// <summary>A thread is taking over the process in execve: the others are leaving.</summary>
    public KernelTask? ExecutingTask { get; set; }

    public KernelTask[] Tasks
    {
        get
        {
            lock (tasks)
            {
                return [.. tasks];
            }
        }
    }

    public int TaskCount
    {
        get
        {
            lock (tasks)
            {
                return tasks.Count;
            }
        }
    }

    public void AddTask(KernelTask task)
    {
        lock (tasks)
        {
            if (Exiting || ExecutingTask is not null)
            {
                throw ErrnoException.Of(Errno.EAGAIN);
            }

            tasks.Add(task);
        }
    }

    /// <summary>
    /// Starts the exit of the whole process (exit_group, a fatal signal, init's death): every task
    /// is told to stop; the first status set wins.
    /// </summary>
    public void BeginExit(ExitStatus status)
    {
        KernelTask[] victims;
        lock (tasks)
        {
            if (ExitStatus is null)
            {
                ExitStatus = status;
            }

            victims = [.. tasks];
        }

        foreach (var task in victims)
        {
            task.Kill();
        }

        // A stopped process must wake up to die.
        StopQueue.Notify(PollEvents.All);
    }

    /// <summary>Called by each task as it leaves; the last one finishes the process.</summary>
    public void RemoveTask(KernelTask task)
    {
        bool last;
        lock (tasks)
        {
            tasks.Remove(task);
            last = tasks.Count == 0;
            if (last && ExitStatus is null)
            {
                ExitStatus = AppKernel.ExitStatus.Exited(task.ExitCode);
            }
        }

        if (!last)
        {
            // An execve waiting for the other threads to leave is told one has.
            lock (tasks)
            {
                Monitor.PulseAll(tasks);
            }

            return;
        }

        Timers.ImageReleasing(Memory);
        Memory?.RemoveUser();
        Memory = null;
        Kernel.ProcessFinished(this);
        exited.TrySetResult(ExitStatus!.Value);
    }

    /// <summary>execve in a multithreaded process: every other thread ends, then the caller is alone.</summary>
    public void KillOtherThreads(KernelTask survivor)
    {
        KernelTask[] others;
        lock (tasks)
        {
            ExecutingTask = survivor;
            others = tasks.Where(t => t != survivor).ToArray();
        }

        foreach (var other in others)
        {
            other.Kill();
        }

        lock (tasks)
        {
            while (tasks.Count > 1)
            {
                Monitor.Wait(tasks, 50);
            }

            ExecutingTask = null;
        }
    }

    /// <summary>A stop signal's default action: every task parks, the parent hears of it.</summary>
    public void BeginStop(int signal)
    {
        lock (tasks)
        {
            if (Exiting || Stopped)
            {
                return;
            }

            Stopped = true;
            StopSignal = signal;
            StopReported = false;
            ContinuedPending = false;
        }

        foreach (var task in Tasks)
        {
            task.Wake();
        }

        Kernel.NotifyParent(this, Signals.CLD_STOPPED, signal);
    }

    /// <summary>SIGCONT (at the moment it is sent): a stopped process runs again and its parent hears of it.</summary>
    public void Continue()
    {
        bool wasStopped;
        lock (tasks)
        {
            wasStopped = Stopped;
            Stopped = false;
            if (wasStopped)
            {
                ContinuedPending = true;
                StopReported = false;
            }
        }

        if (wasStopped)
        {
            StopQueue.Notify(PollEvents.All);
            Kernel.NotifyParent(this, Signals.CLD_CONTINUED, Signals.SIGCONT);
        }
    }

    /// <summary>The wait status word (for wait4 and SIGCHLD's si_status).</summary>
    public static int WaitStatus(ExitStatus status) =>
        status.ExitCode is { } code ? (code & 0xff) << 8 : (status.Signal ?? 0) | (status.CoreDumped ? 0x80 : 0);

    public override string ToString() => $"process {Pid}";

    /// <summary>True when <paramref name="signal"/> would be ignored by this process (SIG_IGN, or SIG_DFL with an ignore default).</summary>
    public bool Ignores(int signal)
    {
        var action = Handlers.Get(signal);
        return action.Handler == Signals.SIG_IGN ||
               (action.Handler == Signals.SIG_DFL && Signals.DefaultActionOf(signal) == DefaultAction.Ignore);
    }
}
