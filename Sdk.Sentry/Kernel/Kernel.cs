using System.Diagnostics;
using AppKernel.Platform;
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
        Id = id;
        Platform = platform;
        MemoryFile = memoryFile;
        Dispatcher = dispatcher;
        Vfs = vfs;
        Log = loggerFactory.CreateLogger("AppKernel.Sentry");
        random = options.RandomSeed is { } seed ? new Random(seed) : new Random();
        BootTime = Now;
        Strace = options.Strace ? new StraceLogger(loggerFactory.CreateLogger("AppKernel.Strace")) : null;
        Poller = new HostPoller();
        Timers = new TimerService(this);
        if (options.Limits.CpuSeconds is { } cpuSeconds)
        {
            CpuBudget = new CpuBudget(this, cpuSeconds);
            CpuBudget.Start();
        }
    }

    public SandboxOptions Options { get; }

    public string Id { get; }

    public IPlatform Platform { get; }

    public MemoryFile MemoryFile { get; }

    public SyscallDispatcher Dispatcher { get; }

    public VirtualFileSystem Vfs { get; }

    public PidNamespace Pids { get; } = new();

    public FutexTable Futexes { get; } = new();

    public HostPoller Poller { get; }

    /// <summary>The kernel's timer thread (started by the first timer): itimers, POSIX timers, CPU-time checks.</summary>
    public TimerService Timers { get; }

    /// <summary>The sandbox-wide CPU-time limit, when <see cref="SandboxLimits.CpuSeconds"/> is set.</summary>
    public CpuBudget? CpuBudget { get; }

    public ILogger Log { get; }

    /// <summary>Set when --strace is on: one log line per syscall.</summary>
    public StraceLogger? Strace { get; }

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

    /// <summary>Creates a process with one task; the caller starts it with the work its host thread does first.</summary>
    public KernelTask CreateProcess(ThreadGroup? parent, FdTable fds, FsContext fs, Credentials credentials, SignalHandlers handlers, ResourceLimits limits)
    {
        int maxTasks = Options.Limits.Tasks ?? PidNamespace.PidMax;
        int pid = Pids.Allocate(maxTasks);
        var group = new ThreadGroup(this, pid, parent, handlers, limits);
        var task = new KernelTask(this, group, pid, fds, fs, credentials);
        group.Leader = task;
        group.AddTask(task);
        lock (Pids.Gate)
        {
            parent?.Children.Add(group);
            liveProcesses++;
        }

        Pids.AddGroup(group);
        Pids.AddTask(task);
        return task;
    }

    /// <summary>Called when a process's last task has gone.</summary>
    public void ProcessExited(ThreadGroup group)
    {
        bool last;
        lock (Pids.Gate)
        {
            group.Parent?.Children.Remove(group);
            last = --liveProcesses == 0;
        }

        Pids.RemoveGroup(group);
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
    public void KillAll()
    {
        foreach (var group in Pids.Groups())
        {
            group.BeginExit(ExitStatus.Killed(Abi.Signals.SIGKILL));
        }
    }

    public void Dispose()
    {
        KillAll();
        Poller.Dispose();
        Timers.Dispose();
    }
}
