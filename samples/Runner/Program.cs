using AppKernel;
using AppKernel.Runner;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

// appkernel: runs a program inside an AppKernel sandbox, like `runsc do`.
// Exit status: the program's own, 128+N when signal N killed it, 125 for the runner's own
// failures, 127 when the program does not exist and 126 when it cannot be executed.

const string DemoScript =
    "echo \"== uname -a\"; uname -a; " +
    "echo \"== id\"; id; " +
    "echo \"== ls /\"; ls /; " +
    "echo \"== a file written and read back\"; echo 'hello from inside the sandbox' > /tmp/greeting; cat /tmp/greeting; " +
    "echo \"== ps-like view of /proc\"; ls /proc | head -5";

try
{
    RunnerOptions options;
    if (args.Length == 0)
    {
        options = new RunnerOptions();
        options.Command.AddRange(["/bin/sh", "-c", DemoScript]);
        Console.Error.WriteLine("appkernel: no command given; running a demo in a sandbox (see 'appkernel do --help')");
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
        logging.AddSimpleConsole(console => console.SingleLine = true);
        logging.AddConsole(console => console.LogToStandardErrorThreshold = LogLevel.Trace);
        logging.SetMinimumLevel(options.Strace ? LogLevel.Information : LogLevel.Warning);
    });
    var builder = services.AddAppKernel(o =>
    {
        o.RootFs = options.RootFs;
        o.RootFsMode = options.RootFsMode;
        o.Strace = options.Strace;
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
    }).UsePtracePlatform();

    try
    {
        if (options.PluginDirectory is { } plugins)
        {
            builder.AddPluginsFrom(plugins);
        }

        await using var provider = services.BuildServiceProvider();
        var factory = provider.GetRequiredService<ISandboxFactory>();
        await using var sandbox = await factory.CreateAsync();
        var spec = new ProcessSpec(options.Command[0], [.. options.Command.Skip(1)]) { Stdio = StdioMode.Inherit };
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

        var status = await process.WaitForExitAsync();
        return status.ShellStatus;
    }
    catch (Exception e) when (e is OptionsValidationException or SandboxConfigurationException or AppKernel.Platform.PlatformUnavailableException or SandboxFailedException)
    {
        Console.Error.WriteLine($"appkernel: {e.Message}");
        return 125;
    }
}
