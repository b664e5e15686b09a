using System.Threading.Channels;
using AppKernel.Sentry.Kernel;
using AppKernel.Sentry.Loader;
using AppKernel.Sentry.Memory;
using AppKernel.Sentry.Native;
using AppKernel.Sentry.Vfs;
using AppKernel.Platform;
using AppKernel.Vfs;
using Microsoft.Extensions.Logging;

namespace AppKernel.Sentry.Hosting;

/// <summary>One sandbox: its kernel, memory file, mounts and Gofer. Disposing kills and reaps everything it owns.</summary>
internal sealed class Sandbox : ISandbox
{
    private readonly Kernel.Kernel kernel;
    private readonly SandboxFileSystems fileSystems;
    private readonly MemoryFile memory;
    private readonly ILogger logger;
    private readonly OutputBudget? outputBudget;
    private readonly Timer? wallTimer;
    private static readonly TimeSpan PeakSamplePeriod = TimeSpan.FromMilliseconds(25);
    private readonly Timer peakSampler;
    private readonly AuditRecorder audit;
    private readonly List<SandboxProcess> processes = new();
    private int disposed;

    private Sandbox(SandboxOptions options, Kernel.Kernel kernel, SandboxFileSystems fileSystems, MemoryFile memory, ILogger logger)
    {
        Options = options;
        this.kernel = kernel;
        this.fileSystems = fileSystems;
        this.memory = memory;
        this.logger = logger;
        Id = kernel.Id;
        // Without AuditEvents the channel exists but stays empty (and completes on dispose).
        audit = new AuditRecorder(options.AuditEventCapacity, kernel.Dispatcher.Table);
        if (options.AuditEvents)
        {
            kernel.Audit = audit;
        }

        if (options.Limits.OutputBytes is { } output)
        {
            outputBudget = new OutputBudget(output);
        }

        // ru_maxrss is the largest resident size a process reached: besides exit and exec, look
        // at every process often, so memory a program frees before it ends still counts.
        peakSampler = new Timer(_ =>
        {
            foreach (var group in kernel.Pids.Groups())
            {
                _ = group.Timers.MaxResidentBytes;
            }
        }, null, PeakSamplePeriod, PeakSamplePeriod);

        if (options.Limits.WallSeconds is { } wall)
        {
            wallTimer = new Timer(_ =>
            {
                WallLimitHit = true;
                kernel.RecordLimit(SandboxLimit.Wall);
                kernel.KillAll();
            }, null, TimeSpan.FromSeconds(wall), Timeout.InfiniteTimeSpan);
        }
    }

    public string Id { get; }

    public ChannelReader<SandboxEvent> Events => audit.Reader;

    public long DroppedEvents => audit.Dropped;

    public SandboxLimit LimitHit
    {
        get
        {
            // The output budget lives with the host files; it is looked at here.
            if (outputBudget?.Exceeded == true)
            {
                kernel.RecordLimit(SandboxLimit.Output);
            }

            return kernel.LimitHit;
        }
    }

    public ResourceUsage ResourceUsage
    {
        get
        {
            SandboxProcess[] started;
            lock (processes)
            {
                started = processes.ToArray();
            }

            var user = TimeSpan.Zero;
            var system = TimeSpan.Zero;
            long peak = 0;
            foreach (var process in started)
            {
                var usage = process.SampleUsage();
                user += usage.UserCpuTime;
                system += usage.SystemCpuTime;
                peak = Math.Max(peak, usage.PeakMemoryBytes);
            }

            return new ResourceUsage(user, system, peak, LimitHit);
        }
    }

    public Task WaitForAllExitedAsync(CancellationToken cancellationToken = default) =>
        kernel.Pids.Groups().Length == 0 ? Task.CompletedTask : kernel.AllExited.WaitAsync(cancellationToken);

    public SandboxOptions Options { get; }

    /// <summary>Whether the wall-clock limit ended the sandbox.</summary>
    public bool WallLimitHit { get; private set; }

    internal Kernel.Kernel Kernel => kernel;

    public static Sandbox Create(SandboxOptions options, IPlatform platform, SentryServices services, ILoggerFactory loggerFactory)
    {
        string id = Guid.NewGuid().ToString("N")[..12];
        var logger = loggerFactory.CreateLogger("AppKernel.Sandbox");
        var memory = new MemoryFile(options.Limits.MemoryBytes);
        SandboxFileSystems? fileSystems = null;
        try
        {
            var vfs = new VirtualFileSystem();
            var stacks = services.NetworkStacks.Select(r => r.Factory(services.Services)).ToArray();
            fileSystems = SandboxFileSystems.Start(options, logger);
            platform.EnsureAvailable();
            fileSystems.MountRoot(options, vfs, memory);
            var kernel = new Kernel.Kernel(options, id, platform, memory, services.Dispatcher, vfs, loggerFactory);
            kernel.Network = new Net.Network(options.Network == NetworkMode.Host
                ? [.. stacks, new Net.HostStack(new Net.NetworkPolicy(options.AllowConnect, options.AllowBind), kernel.Poller, kernel.Log)]
                : stacks);
            memory.LimitReached = () => kernel.RecordLimit(SandboxLimit.Memory);
            fileSystems.MountStandard(kernel, options, services, logger);
            return new Sandbox(options, kernel, fileSystems, memory, logger);
        }
        catch
        {
            fileSystems?.Dispose();
            memory.Dispose();
            throw;
        }
    }

    public Task<ISandboxProcess> StartAsync(ProcessSpec spec, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(spec);
        ObjectDisposedException.ThrowIf(disposed != 0, this);
        var environment = spec.Environment ?? Options.Environment;
        var envp = environment.Select(kv => $"{kv.Key}={kv.Value}").ToList();
        var vfs = kernel.Vfs;
        var credentials = Credentials.ForUser(Options.Uid, Options.Gid);
        var rootContext = new PathContext(credentials, vfs.RootPath, vfs.RootPath, null);
        string workingDirectory = spec.WorkingDirectory ?? Options.WorkingDirectory;
        VfsPath cwd;
        try
        {
            cwd = vfs.Resolve(rootContext, workingDirectory, followFinal: true).Path;
        }
        catch (ErrnoException e)
        {
            throw new SandboxStartException($"working directory '{workingDirectory}': {e.Errno}", e.Errno, e);
        }

        string path = FindProgram(spec.Path, environment, rootContext with { Start = cwd });
        var stdio = OpenStdio(spec.Stdio, out var hostStreams);
        var fds = new FdTable();
        int limit = Options.Limits.OpenFiles ?? 1024;
        for (int fd = 0; fd < 3; fd++)
        {
            fds.InstallAt(fd, stdio[fd], false, Math.Max(limit, 3));
        }

        var fs = new FsContext(vfs.RootPath, cwd, 0x12);
        KernelTask task;
        try
        {
            task = kernel.CreateProcess(null, fds, fs, credentials, new SignalHandlers(), ResourceLimits.Defaults(Options.Limits));
        }
        catch (ErrnoException e)
        {
            fds.RemoveUser();
            hostStreams.Dispose();
            throw new SandboxStartException($"cannot create a process: {e.Errno}", e.Errno, e);
        }

        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var argv = spec.Arguments.ToList();
        task.Start(() =>
        {
            ExecPlan plan;
            try
            {
                plan = ElfLoader.Prepare(task, task.PathContext, path, argv, envp);
            }
            catch (ErrnoException e)
            {
                started.TrySetException(new SandboxStartException($"{spec.Path}: {Describe(e.Errno)}", e.Errno, e));
                task.ExitCode = e.Errno == Errno.ENOENT ? 127 : 126;
                task.Kill();
                return;
            }

            ElfLoader.Commit(task, plan);
            started.TrySetResult();
        });

        return WaitStarted();

        async Task<ISandboxProcess> WaitStarted()
        {
            try
            {
                await started.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                // Cancelled while loading: the process exists; kill it so nothing is left behind.
                task.Group.BeginExit(ExitStatus.Killed(Abi.Signals.SIGKILL));
                hostStreams.Dispose();
                throw;
            }
            catch
            {
                hostStreams.Dispose();
                throw;
            }

            var process = new SandboxProcess(this, task.Group, hostStreams);
            lock (processes)
            {
                processes.Add(process);
            }

            return process;
        }
    }

    private static string Describe(Errno errno) => errno switch
    {
        Errno.ENOENT => "No such file or directory",
        Errno.EACCES => "Permission denied",
        Errno.ENOEXEC => "Exec format error",
        Errno.ELIBBAD => "Accessing a corrupted shared library",
        Errno.ENOTDIR => "Not a directory",
        Errno.ELOOP => "Too many levels of symbolic links",
        Errno.E2BIG => "Argument list too long",
        _ => errno.ToString(),
    };

    /// <summary>Like a shell: a name without a slash is looked up in the sandbox's PATH.</summary>
    private string FindProgram(string program, IDictionary<string, string> environment, PathContext context)
    {
        if (program.Contains('/'))
        {
            return program;
        }

        string pathVariable = environment.TryGetValue("PATH", out var p) ? p : "/usr/local/bin:/usr/bin:/bin";
        foreach (var directory in pathVariable.Split(':', StringSplitOptions.RemoveEmptyEntries))
        {
            string candidate = directory.TrimEnd('/') + "/" + program;
            try
            {
                var resolution = kernel.Vfs.Resolve(context, candidate, followFinal: true);
                var attributes = resolution.Inode.GetAttributes();
                if (attributes.Mode.IsRegular() && Permissions.MayAccess(attributes, context.Credentials, Permissions.Execute))
                {
                    return candidate;
                }
            }
            catch (ErrnoException)
            {
            }
        }

        throw new SandboxStartException($"{program}: command not found", Errno.ENOENT);
    }

    private FileDescription[] OpenStdio(StdioMode mode, out HostStreams streams)
    {
        var poller = kernel.Poller;
        if (mode == StdioMode.Inherit)
        {
            streams = new HostStreams(null, null, null);
            return
            [
                Describe(HostFile.Open(0, write: false, poller), "host stdin", AppKernel.Vfs.OpenFlags.ReadOnly),
                Describe(HostFile.Open(1, write: true, poller, outputBudget), "host stdout", AppKernel.Vfs.OpenFlags.WriteOnly),
                Describe(HostFile.Open(2, write: true, poller, outputBudget), "host stderr", AppKernel.Vfs.OpenFlags.WriteOnly),
            ];
        }

        var (stdinRead, stdinWrite) = HostPipe();
        var (stdoutRead, stdoutWrite) = HostPipe();
        var (stderrRead, stderrWrite) = HostPipe();
        try
        {
            var descriptions = new[]
            {
                Describe(HostFile.Open(stdinRead, write: false, poller), "pipe to host", AppKernel.Vfs.OpenFlags.ReadOnly),
                Describe(HostFile.Open(stdoutWrite, write: true, poller, outputBudget), "pipe to host", AppKernel.Vfs.OpenFlags.WriteOnly),
                Describe(HostFile.Open(stderrWrite, write: true, poller, outputBudget), "pipe to host", AppKernel.Vfs.OpenFlags.WriteOnly),
            };
            streams = new HostStreams(
                new FileStream(new Microsoft.Win32.SafeHandles.SafeFileHandle(stdinWrite, ownsHandle: true), FileAccess.Write, 1),
                new FileStream(new Microsoft.Win32.SafeHandles.SafeFileHandle(stdoutRead, ownsHandle: true), FileAccess.Read, 1),
                new FileStream(new Microsoft.Win32.SafeHandles.SafeFileHandle(stderrRead, ownsHandle: true), FileAccess.Read, 1));
            return descriptions;
        }
        finally
        {
            // HostFile took its own copies of the sandbox ends.
            LibC.Close(stdinRead);
            LibC.Close(stdoutWrite);
            LibC.Close(stderrWrite);
        }
    }

    private static FileDescription Describe(HostFile file, string name, AppKernel.Vfs.OpenFlags flags) =>
        new(file, null, flags, name) { Offset = file.CurrentOffset };

    private static unsafe (int Read, int Write) HostPipe()
    {
        int* fds = stackalloc int[2];
        if (LibC.Pipe2(fds, LibC.O_CLOEXEC) != 0)
        {
            throw LibC.HostError("pipe2");
        }

        return (fds[0], fds[1]);
    }

    public void KillAll() => kernel.KillAll();

    /// <summary>Whether the output limit was reached.</summary>
    public bool OutputLimitHit => outputBudget?.Exceeded ?? false;

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref disposed, 1) != 0)
        {
            return;
        }

        wallTimer?.Dispose();
        peakSampler.Dispose();
        kernel.KillAll();
        if (kernel.Pids.Groups().Length > 0)
        {
            try
            {
                await kernel.AllExited.WaitAsync(TimeSpan.FromSeconds(10)).ConfigureAwait(false);
            }
            catch (TimeoutException)
            {
                // Freeing the memory file and the Gofer under running tasks would crash the host
                // process; leaving them to the tasks (and the garbage collector) is the lesser evil.
                logger.LogError("sandbox {Id}: processes did not exit within 10 s of SIGKILL; its resources are left to them", Id);
                audit.Complete();
                return;
            }
        }

        SandboxProcess[] started;
        lock (processes)
        {
            started = processes.ToArray();
        }

        foreach (var process in started)
        {
            process.CloseStreams();
        }

        audit.Complete();
        kernel.Dispose();
        fileSystems.Dispose();
        memory.Dispose();
    }
}

/// <summary>The host's ends of a piped program's stdio.</summary>
internal sealed record HostStreams(Stream? Input, Stream? Output, Stream? Error) : IDisposable
{
    public void Dispose()
    {
        Input?.Dispose();
        Output?.Dispose();
        Error?.Dispose();
    }
}
