using AppKernel;
using AppKernel.Runner;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Console;
using Microsoft.Extensions.Options;
using System.Runtime.InteropServices;

// appkernel: runs a program inside an AppKernel sandbox, like `runsc do`.
// Exit status: the program's own, 128+N when signal N killed it, 125 for the runner's own
// failures, 127 when the program does not exist and 126 when it cannot be executed.

// The demo: several programs, one after another, in one sandbox (they share its /tmp).
string[][] demo =
[
    ["/bin/uname", "-a"],
    ["/usr/bin/id"],
    ["/bin/ls", "/"],
    ["/bin/sh", "-c", "echo 'hello from inside the sandbox' > /tmp/greeting"],
    ["/bin/cat", "/tmp/greeting"],
    ["/bin/cat", "/proc/self/status"],
];

try
{
    RunnerOptions options;
    if (args.Length == 0)
    {
        options = new RunnerOptions();
        options.Command.AddRange(demo[0]);
        options.Demo = demo;
        Console.Error.WriteLine("appkernel: no command given; running a demo in a sandbox (see 'appkernel --help')");
    }
    else if (args[0] is "--help" or "-h" or "help" || (args[0] == "do" && args.Length > 1 && args[1] is "--help" or "-h"))
    {
        Console.WriteLine(CommandLine.Usage);
        return 0;
    }
    else if (args[0] != "do")
    {
        throw new UsageException($"unknown command '{args[0]}'");
    }
    else
    {
        options = CommandLine.Parse(args.Skip(1).ToArray());
    }

    return await Run(options);
}
catch (UsageException e)
{
    Console.Error.WriteLine($"appkernel: {e.Message}");
    Console.Error.WriteLine(CommandLine.Usage);
    return 125;
}

static async Task<int> Run(RunnerOptions options)
{
    var services = new ServiceCollection();
    services.AddLogging(logging =>
    {
        // Everything the runner logs goes to stderr: stdout belongs to the program.
        logging.AddConsole(console =>
        {
            console.FormatterName = PlainConsoleFormatter.FormatterName;
            console.LogToStandardErrorThreshold = LogLevel.Trace;
        });
        logging.AddConsoleFormatter<PlainConsoleFormatter, ConsoleFormatterOptions>();
        // The runner's own logs from Warning (Information with --strace); plugins' logs (any
        // category outside AppKernel.* and Microsoft.*, like an audit plugin's) from Information.
        logging.SetMinimumLevel(LogLevel.Information);
        logging.AddFilter((category, level) => options.Strace || level >= LogLevel.Warning ||
            (category is not null && !category.StartsWith("AppKernel.", StringComparison.Ordinal) && !category.StartsWith("Microsoft.", StringComparison.Ordinal)));
    });
    var builder = services.AddAppKernel(o =>
    {
        o.RootFs = options.RootFs;
        o.RootFsMode = options.RootFsMode;
        o.Strace = options.Strace;
        o.StraceTimes = options.StraceTimes;
        o.Network = options.Network;
        foreach (var rule in options.AllowConnect)
        {
            o.AllowConnect.Add(rule);
        }

        foreach (var port in options.AllowBind)
        {
            o.AllowBind.Add(port);
        }

        if (options.Hostname is { } hostname)
        {
            o.Hostname = hostname;
        }

        foreach (var (key, value) in options.Environment)
        {
            o.Environment[key] = value;
        }

        if (!o.Environment.ContainsKey("TERM") && Environment.GetEnvironmentVariable("TERM") is { } term)
        {
            o.Environment["TERM"] = term;
        }

        o.Environment.TryAdd("HOME", "/root");
        if (options.WorkingDirectory is { } cwd)
        {
            o.WorkingDirectory = cwd;
        }

        o.Platform = options.Platform;
        foreach (var bind in options.Binds)
        {
            o.Mounts.Add(bind);
        }

        if (options.Uid is { } uid)
        {
            o.Uid = uid;
            o.Gid = options.Gid ?? uid;
        }

        o.Limits.MemoryBytes = options.MemoryBytes;
        o.Limits.Tasks = options.Tasks;
        o.Limits.OpenFiles = options.OpenFiles;
        o.Limits.CpuSeconds = options.CpuSeconds;
        o.Limits.WallSeconds = options.WallSeconds;
        o.Limits.OutputBytes = options.OutputBytes;
    }).UsePtracePlatform().AddPlatform<AppKernel.Platform.Kvm.KvmPlatform>("kvm");

    try
    {
        if (options.PluginDirectory is { } plugins)
        {
            builder.AddPluginsFrom(plugins);
        }

        await using var provider = services.BuildServiceProvider();
        var factory = provider.GetRequiredService<ISandboxFactory>();
        await using var sandbox = await factory.CreateAsync();
        int result = 0;
        foreach (var command in options.Demo ?? [[.. options.Command]])
        {
            if (options.Demo is not null)
            {
                Console.WriteLine($"$ {string.Join(' ', command)}");
            }

            var spec = new ProcessSpec(command[0], [.. command.Skip(1)]) { Stdio = StdioMode.Inherit };
            ISandboxProcess process;
            try
            {
                process = await sandbox.StartAsync(spec);
            }
            catch (SandboxStartException e)
            {
                Console.Error.WriteLine($"appkernel: {e.Message}");
                return e.Errno == Errno.ENOENT ? 127 : 126;
            }

            // Signals the runner gets go to the program (Ctrl-C reaches it, as with runsc do).
            var forwarded = new List<PosixSignalRegistration>();
            (PosixSignal Host, int Linux)[] signals =
            [
                (PosixSignal.SIGHUP, 1), (PosixSignal.SIGINT, 2), (PosixSignal.SIGQUIT, 3), (PosixSignal.SIGTERM, 15),
                ((PosixSignal)10, 10), ((PosixSignal)12, 12),
            ];
            foreach (var (host, linux) in signals)
            {
                forwarded.Add(PosixSignalRegistration.Create(host, context =>
                {
                    context.Cancel = true;
                    process.Signal(linux);
                }));
            }

            ExitStatus status;
            try
            {
                status = await process.WaitForExitAsync();
            }
            finally
            {
                forwarded.ForEach(r => r.Dispose());
            }

            result = status.ShellStatus;
            if (options.Demo is not null && result != 0)
            {
                break;
            }
        }

        return result;
    }
    catch (Exception e) when (e is OptionsValidationException or SandboxConfigurationException or AppKernel.Platform.PlatformUnavailableException
                                   or SandboxFailedException or AppKernel.Gofer.GoferException)
    {
        Console.Error.WriteLine($"appkernel: {e.Message}");
        return 125;
    }
    catch (Exception e)
    {
        // Anything else is a bug in the runner or the kernel: one line, the status of a runner failure.
        Console.Error.WriteLine($"appkernel: internal error: {e.GetType().Name}: {e.Message}");
        return 125;
    }
}
