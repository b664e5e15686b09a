using AppKernel.Sentry.Abi;
using AppKernel.Sentry.Kernel.Timers;
using AppKernel.Sentry.Memory;

namespace AppKernel.Sentry.Kernel;

/// <summary>
/// A process: the tasks that share a pid (thread group), its memory, signal dispositions,
/// shared pending signals, limits, process group and session, and its exit status.
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
        Timers = new ProcessTimers(this);
    }

    public Kernel Kernel { get; }

    public int Pid { get; }

    public ThreadGroup? Parent { get; set; }

    public List<ThreadGroup> Children { get; } = new();

    public object Gate => tasks;

    public MemoryManager? Memory { get; set; }

    public SignalHandlers Handlers { get; set; }

    public ResourceLimits Limits { get; }

    public int ProcessGroup { get; set; }

    public int Session { get; set; }

    public string ExecutablePath { get; set; } = "";

    /// <summary>prctl(PR_SET_DUMPABLE).</summary>
    public bool Dumpable { get; set; } = true;

    /// <summary>prctl(PR_SET_CHILD_SUBREAPER): orphaned descendants are reparented here rather than to init.</summary>
    public bool ChildSubreaper { get; set; }

    /// <summary>personality(2) flags.</summary>
    public int Personality { get; set; }

    /// <summary>The process's timers and CPU account (itimers, POSIX timers, RLIMIT_CPU); never inherited by fork.</summary>
    public ProcessTimers Timers { get; }

    /// <summary>Signals pending for the whole process.</summary>
    public SignalQueue SharedPending { get; } = new();

    /// <summary>The status the process ends with, once a group exit began.</summary>
    public ExitStatus? ExitStatus { get; private set; }

    public bool Exiting => ExitStatus is not null;

    /// <summary>Completes when every task has exited and the process's resources are released.</summary>
    public Task<ExitStatus> Exited => exited.Task;

    /// <summary>The task whose tid equals the pid.</summary>
    public KernelTask? Leader { get; set; }

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

    public void AddTask(KernelTask task)
    {
        lock (tasks)
        {
            if (Exiting)
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
            if (ExitStatus is not null)
            {
                return;
            }

            ExitStatus = status;
            victims = [.. tasks];
        }

        foreach (var task in victims)
        {
            task.Kill();
        }
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

        if (last)
        {
            Finish();
        }
    }

    private void Finish()
    {
        Memory?.Dispose();
        Memory = null;
        Kernel.ProcessExited(this);
        exited.TrySetResult(ExitStatus!.Value);
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
