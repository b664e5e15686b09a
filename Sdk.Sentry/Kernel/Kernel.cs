using System.Diagnostics;
using AppKernel.Platform;
using AppKernel.Sentry.Hosting;
using AppKernel.Sentry.Kernel.Timers;
using AppKernel.Sentry.Memory;
using AppKernel.Sentry.Abi;
using AppKernel.Sentry.Syscalls;
using AppKernel.Sentry.Vfs;
using Microsoft.Extensions.Logging;

namespace AppKernel.Sentry.Kernel;

/// <summary>
/// One sandbox's kernel: its PID namespace, memory file, platform, syscall dispatcher, mount
/// tree, clocks and futexes. Everything a task reaches hangs off it; nothing is shared between kernels.
/// </summary>
internal sealed class Kernel : IDisposable
{
    private readonly object randomGate = new();
    private readonly Random random;
    private readonly TaskCompletionSource allExited = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int liveProcesses;

    public Kernel(
        SandboxOptions options,
        string id,
        IPlatform platform,
        MemoryFile memoryFile,
        SyscallDispatcher dispatcher,
        VirtualFileSystem vfs,
        ILoggerFactory loggerFactory)
    {
        Options = options;
        RootUts = new UtsNamespace(options.Hostname, "(none)");
        Id = id;
        Platform = platform;
        MemoryFile = memoryFile;
        Dispatcher = dispatcher;
        Vfs = vfs;
        Log = loggerFactory.CreateLogger("AppKernel.Sentry");
        random = options.RandomSeed is { } seed ? new Random(seed) : new Random();
        BootTime = Now;
        Strace = options.Strace ? new StraceLogger(loggerFactory.CreateLogger("AppKernel.Strace"), options.StraceTimes) : null;
        Poller = new HostPoller();
        Timers = new TimerService(this);
        if (options.Limits.CpuSeconds is { } cpuSeconds)
        {
            CpuBudget = new CpuBudget(this, cpuSeconds);
            CpuBudget.Start();
        }
        if (options.Limits.MemoryBytes is { } limit)
        {
            memoryWatch = new Timer(_ => EnforceMemoryLimit(limit), null, MemoryWatchPeriod, MemoryWatchPeriod);
        }
    }

    private static readonly TimeSpan MemoryWatchPeriod = TimeSpan.FromMilliseconds(50);
    private readonly Timer? memoryWatch;
    private int oomKills;
    private int limitHit;

    /// <summary>The first sandbox limit that was hit (<see cref="SandboxLimit.None"/> if none).</summary>
    public SandboxLimit LimitHit => (SandboxLimit)Volatile.Read(ref limitHit);

    /// <summary>Records that <paramref name="limit"/> was hit; the first one recorded is kept.</summary>
    public void RecordLimit(SandboxLimit limit) =>
        Interlocked.CompareExchange(ref limitHit, (int)limit, (int)SandboxLimit.None);

    /// <summary>The sandbox's audit event recorder, when <see cref="SandboxOptions.AuditEvents"/> is on.</summary>
    public AuditRecorder? Audit { get; set; }

    /// <summary>How many processes the sandbox's own OOM killer ended.</summary>
    public int OomKills => Volatile.Read(ref oomKills);

    /// <summary>
    /// The sandbox's OOM killer: memory is allocated lazily by the host as pages are touched, so
    /// allocation alone cannot keep the sandbox under its limit. Past it, the process holding the
    /// most memory is killed, as Linux's OOM killer would in a cgroup (never the host's killer).
    /// </summary>
    private void EnforceMemoryLimit(long limit)
    {
        if (MemoryFile.ResidentBytes <= limit)
        {
            return;
        }

        var victim = Pids.Groups()
            .Where(g => g.State == ProcessState.Running && !g.Exiting && g.Memory is not null)
            .OrderByDescending(g => g.Memory!.PopulatedBytes)
            .FirstOrDefault();
        if (victim is null)
        {
            return;
        }

        OutOfMemory(victim);
    }

    /// <summary>Kills <paramref name="victim"/> for want of memory (SIGKILL) and counts it.</summary>
    public void OutOfMemory(ThreadGroup victim)
    {
        if (victim.Exiting)
        {
            return;
        }

        Interlocked.Increment(ref oomKills);
        RecordLimit(SandboxLimit.Memory);
        Log.LogOomKill(victim.Pid, victim.Leader?.Name ?? "", MemoryFile.ResidentBytes, Options.Limits.MemoryBytes ?? 0);
        victim.BeginExit(ExitStatus.Killed(Signals.SIGKILL));
    }

    public SandboxOptions Options { get; }

    /// <summary>The sandbox's first UTS namespace: the host name from the options.</summary>
    public UtsNamespace RootUts { get; }

    public string Id { get; }

    public IPlatform Platform { get; }

    public MemoryFile MemoryFile { get; }

    public SyscallDispatcher Dispatcher { get; }

    public VirtualFileSystem Vfs { get; }

    public PidNamespace Pids { get; } = new();

    /// <summary>The sandbox's sockets: the Unix namespace, the loopback stack, plugin stacks.</summary>
    public Net.Network Network { get; set; } = new([]);

    public FutexTable Futexes { get; } = new();

    /// <summary>The tmpfs instance memfd_create's files live in (made on first use).</summary>
    public AppKernel.Sentry.Fs.Tmpfs.TmpfsFileSystem MemfdFileSystem => LazyInitializer.EnsureInitialized(ref memfdFileSystem, () => new AppKernel.Sentry.Fs.Tmpfs.TmpfsFileSystem(MemoryFile));

    private AppKernel.Sentry.Fs.Tmpfs.TmpfsFileSystem? memfdFileSystem;

    /// <summary>Advisory file locks (flock, POSIX and OFD record locks) of every file in the sandbox.</summary>
    public FileLockTable FileLocks { get; } = new();

    public HostPoller Poller { get; }

    /// <summary>The kernel's timer thread (started by the first timer): itimers, POSIX timers, CPU-time checks.</summary>
    public TimerService Timers { get; }

    /// <summary>The sandbox-wide CPU-time limit, when <see cref="SandboxLimits.CpuSeconds"/> is set.</summary>
    public CpuBudget? CpuBudget { get; }

    public ILogger Log { get; }

    /// <summary>Set when --strace is on: one log line per syscall.</summary>
    public StraceLogger? Strace { get; }

    /// <summary>The host threads tasks run on, reused from one task to the next where the platform allows it.</summary>
    public TaskThreadPool TaskThreads { get; } = new();

    /// <summary>CLOCK_MONOTONIC in nanoseconds.</summary>
    public static long Now => (long)(Stopwatch.GetTimestamp() * (1_000_000_000.0 / Stopwatch.Frequency));

    /// <summary><see cref="Now"/> when the sandbox started (its boot, for /proc/uptime).</summary>
    public long BootTime { get; }

    /// <summary>The diagnostic of an internal failure that brought the sandbox down, if any.</summary>
    public string? Failure { get; private set; }

    /// <summary>Completes when no process is left.</summary>
    public Task AllExited => allExited.Task;

    /// <summary>Random bytes for AT_RANDOM and address-space layout (deterministic with a fixed seed).</summary>
    public void RandomBytes(Span<byte> destination)
    {
        lock (randomGate)
        {
            random.NextBytes(destination);
        }
    }

    /// <summary>A random page-aligned offset below <paramref name="range"/> bytes (ASLR).</summary>
    public ulong RandomPages(ulong range)
    {
        lock (randomGate)
        {
            ulong pages = range / MemoryManager.PageSize;
            return pages == 0 ? 0 : (ulong)random.NextInt64((long)pages) * MemoryManager.PageSize;
        }
    }

    /// <summary>A pid or tid; EAGAIN at the sandbox's task limit (recorded as <see cref="SandboxLimit.Tasks"/>).</summary>
    private int AllocatePid(int maxTasks)
    {
        try
        {
            return Pids.Allocate(maxTasks);
        }
        catch (ErrnoException) when (Options.Limits.Tasks is not null)
        {
            RecordLimit(SandboxLimit.Tasks);
            throw;
        }
    }

    /// <summary>Creates a process with one task; the caller starts it with the work its host thread does first.</summary>
    public KernelTask CreateProcess(ThreadGroup? parent, FdTable fds, FsContext fs, Credentials credentials, SignalHandlers handlers, ResourceLimits limits)
    {
        int maxTasks = Options.Limits.Tasks ?? PidNamespace.PidMax;
        lock (Pids.Gate)
        {
            // A process being killed (or exiting) makes no children: KillAll relies on it.
            if (parent is { Exiting: true })
            {
                throw ErrnoException.Of(Errno.EAGAIN);
            }

            int pid = AllocatePid(maxTasks);
            var group = new ThreadGroup(this, pid, parent, handlers, limits);
            var task = new KernelTask(this, group, pid, fds, fs, credentials);
            group.Leader = task;
            group.AddTask(task);
            parent?.Children.Add(group);
            liveProcesses++;
            Pids.AddGroup(group);
            Pids.AddTask(task);
            return task;
        }
    }

    /// <summary>A new thread in <paramref name="group"/> (clone with CLONE_THREAD).</summary>
    public KernelTask CreateThread(ThreadGroup group, FdTable fds, FsContext fs, Credentials credentials)
    {
        int maxTasks = Options.Limits.Tasks ?? PidNamespace.PidMax;
        lock (Pids.Gate)
        {
            int tid = AllocatePid(maxTasks);
            var task = new KernelTask(this, group, tid, fds, fs, credentials);
            group.AddTask(task);
            Pids.AddTask(task);
            return task;
        }
    }

    /// <summary>
    /// Called when a process's last task has gone: its children go to the nearest subreaper or
    /// init, and it becomes a zombie for its parent to reap (or is reaped at once when there is
    /// no parent in the sandbox or the parent ignores SIGCHLD).
    /// </summary>
    public void ProcessFinished(ThreadGroup group)
    {
        bool last;
        lock (Pids.Gate)
        {
            var heir = FindReaper(group);
            foreach (var child in group.Children)
            {
                child.Parent = heir;
                heir?.Children.Add(child);
                foreach (var task in child.Tasks)
                {
                    if (task.ParentDeathSignal != 0)
                    {
                        task.SendSignal(SignalInfo.Kernel(task.ParentDeathSignal));
                    }
                }
            }

            var zombies = group.Children.Where(c => c.State == ProcessState.Zombie).ToList();
            group.Children.Clear();
            if (heir is null)
            {
                foreach (var zombie in zombies)
                {
                    Reap(zombie);
                }
            }

            var parent = group.Parent;
            var action = parent?.Handlers.Get(Signals.SIGCHLD) ?? default;
            bool autoReap = parent is null || action.Handler == Signals.SIG_IGN || (action.Flags & Signals.SA_NOCLDWAIT) != 0;
            if (autoReap)
            {
                parent?.Children.Remove(group);
                Reap(group);
            }
            else
            {
                group.State = ProcessState.Zombie;
            }

            last = --liveProcesses == 0;
            foreach (var zombie in heir is null ? [] : zombies)
            {
                NotifyParent(zombie, 0, 0);
            }
        }

        if (group.Parent is not null)
        {
            var status = group.ExitStatus!.Value;
            NotifyParent(group, status.ExitCode is not null ? Signals.CLD_EXITED : status.CoreDumped ? Signals.CLD_DUMPED : Signals.CLD_KILLED,
                status.ExitCode ?? status.Signal ?? 0);
        }

        if (group.Pid == 1)
        {
            // Init's death takes the whole PID namespace with it.
            KillAll();
        }

        if (last)
        {
            allExited.TrySetResult();
        }
    }

    /// <summary>Tells a process's parent about a change: SIGCHLD (or the chosen exit signal) and a wake-up for waiters.</summary>
    public void NotifyParent(ThreadGroup child, int code, int status)
    {
        ThreadGroup? parent;
        lock (Pids.Gate)
        {
            parent = child.Parent;
        }

        if (parent is null)
        {
            return;
        }

        Interlocked.Increment(ref parent.ChildEventGeneration);
        parent.ChildEvents.Notify(AppKernel.Vfs.PollEvents.All);
        if (code == 0)
        {
            return;
        }

        int signal = code is Signals.CLD_STOPPED or Signals.CLD_CONTINUED ? Signals.SIGCHLD : child.ExitSignal;
        var action = parent.Handlers.Get(Signals.SIGCHLD);
        if (signal == 0 || (signal == Signals.SIGCHLD && code is Signals.CLD_STOPPED or Signals.CLD_CONTINUED && (action.Flags & Signals.SA_NOCLDSTOP) != 0))
        {
            return;
        }

        var leader = child.Leader;
        var info = new SignalInfo
        {
            Signo = signal,
            Code = code,
            Pid = child.Pid,
            Uid = leader?.Credentials.RealUid ?? 0,
            Status = status,
        };
        Syscalls.SignalSyscalls.SendToGroup(parent, info);
    }

    /// <summary>Removes a finished process for good: its pid becomes free.</summary>
    public void Reap(ThreadGroup group)
    {
        group.State = ProcessState.Reaped;
        Pids.RemoveGroup(group);
    }

    private ThreadGroup? FindReaper(ThreadGroup dying)
    {
        for (var ancestor = dying.Parent; ancestor is not null; ancestor = ancestor.Parent)
        {
            if (ancestor.ChildSubreaper && ancestor.State == ProcessState.Running && !ancestor.Exiting)
            {
                return ancestor;
            }
        }

        var init = Pids.FindGroup(1);
        return init is not null && init != dying && init.State == ProcessState.Running ? init : null;
    }

    /// <summary>A bug or platform failure in a task: record the diagnostic and bring the whole sandbox down (never the host).</summary>
    public void Fail(KernelTask task, Exception error)
    {
        string where = task.Number != 0 || error is not null ? $" in {task} during syscall {SyscallNames.Get(task.Number) ?? task.Number.ToString()}" : "";
        string message = $"sandbox {Id}: internal error{where}: {error?.GetType().Name}: {error?.Message}";
        Failure ??= message;
        Log.LogError(error, "{Message}", message);
        KillAll();
    }

    /// <summary>SIGKILL to every process in the sandbox.</summary>
    /// <summary>
    /// SIGKILL to every process, including the children of forks that were in flight: a dying
    /// process cannot fork (<see cref="CreateProcess"/>), and a fork that passed that check before
    /// its parent was killed holds the PID lock until its child is listed, so another look at the
    /// list finds it. Repeats until a look finds no live process (a fork bomb cannot outrun it).
    /// </summary>
    public void KillAll()
    {
        foreach (var group in Pids.Groups())
        {
            group.BeginExit(ExitStatus.Killed(Abi.Signals.SIGKILL));
        }

        for (int pass = 0; pass < 1000; pass++)
        {
            bool found = false;
            foreach (var group in Pids.Groups())
            {
                if (!group.Exiting)
                {
                    group.BeginExit(ExitStatus.Killed(Abi.Signals.SIGKILL));
                    found = true;
                }
            }

            if (!found)
            {
                return;
            }
        }
    }

    public void Dispose()
    {
        memoryWatch?.Dispose();
        KillAll();
        Poller.Dispose();
        Timers.Dispose();
        TaskThreads.Dispose();
    }
}
