using System.Diagnostics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace AppKernel.Integration.Tests;

/// <summary>
/// samples/AuditPlugin loaded from a folder, as users load plugins: by the runner
/// (<c>appkernel do --plugins DIR</c>) and by a host application (<c>AddPluginsFrom</c>).
/// </summary>
[TestClass]
public sealed class AuditPluginTests
{
    private const string Script = "cat /etc/hostname > /dev/null; echo hi > /tmp/ok && cat /tmp/ok; echo x > /etc/denied; echo y > /tmp/../etc/sneaky; /bin/true a 'b c'";

    private static string PluginDirectory => Path.Combine(Repository.Artifacts, "plugins");

    [TestMethod]
    public async Task TheRunnerLoadsThePluginFromAFolderAndItLogsAndDenies()
    {
        string runner = Path.Combine(Repository.Root, "samples", "Runner", "bin", "Release", "net10.0", "appkernel");
        if (!File.Exists(runner))
        {
            Assert.Inconclusive("the appkernel runner is not built in Release");
        }

        var start = new ProcessStartInfo(runner, ["do", "--plugins", PluginDirectory, "--", "/bin/sh", "-c", Script])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
        };
        using var process = Process.Start(start)!;
        process.StandardInput.Close();
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(120));
        string error = await stderr;
        Assert.AreEqual("hi\n", await stdout, error);
        Assert.AreEqual(0, process.ExitCode, error);
        StringAssert.Contains(error, "/etc/denied: Permission denied");
        StringAssert.Contains(error, "appkernel: warning: audit: pid 1 (sh) openat /etc/denied O_WRONLY|O_CREAT|O_TRUNC denied: writes are allowed under /tmp only");
        StringAssert.Contains(error, "appkernel: info: audit: pid 1 (sh) openat /tmp/ok O_WRONLY|O_CREAT|O_TRUNC = 3");
        StringAssert.Contains(error, "openat /etc/hostname O_RDONLY = 3");
        StringAssert.Contains(error, "execve /bin/true argv=/bin/true, a, b c");
    }

    [TestMethod]
    public async Task AHostAppLoadsThePluginWithAddPluginsFromAndGetsStructuredLogs()
    {
        var logs = new CapturingLoggerProvider();
        var services = new ServiceCollection();
        services.AddLogging(b => b.AddProvider(logs).SetMinimumLevel(LogLevel.Information));
        services.AddAppKernel(o =>
        {
            o.Mounts.Add(new MountSpec { Target = Repository.Artifacts, Type = "bind", Source = Repository.Artifacts, ReadOnly = true });
        }).UsePtracePlatform().AddPluginsFrom(PluginDirectory);
        await using var provider = services.BuildServiceProvider();
        await using var sandbox = await provider.GetRequiredService<ISandboxFactory>().CreateAsync();

        var run = await RunAsync(sandbox, "/bin/sh", "-c", Script);
        Assert.AreEqual("hi\n", run.Output, run.Error);
        StringAssert.Contains(run.Error, "/etc/denied: Permission denied");
        StringAssert.Contains(run.Error, "/tmp/../etc/sneaky: Permission denied");
        Assert.AreEqual(0, run.Status.ExitCode);

        var connect = await RunAsync(sandbox, Fixtures.Path("auditconnect"));
        Assert.AreEqual("inet: -1 failed as expected\nunix: -1 failed as expected\n", connect.Output, connect.Error);

        var records = logs.Records.ToArray();
        string all = string.Join("\n", records.Select(r => r.Message));
        var denied = records.Single(r => r.Level == LogLevel.Warning && Equals(r.Get("Path"), "/etc/denied"));
        Assert.AreEqual("openat", denied.Get("Syscall"));
        Assert.AreEqual("O_WRONLY|O_CREAT|O_TRUNC", denied.Get("Flags"));
        Assert.AreEqual("sh", denied.Get("Command"));
        Assert.IsTrue(records.Any(r => r.Level == LogLevel.Warning && Equals(r.Get("Path"), "/tmp/../etc/sneaky")), all);

        var tmp = records.First(r => Equals(r.Get("Path"), "/tmp/ok") && Equals(r.Get("Flags"), "O_WRONLY|O_CREAT|O_TRUNC"));
        Assert.AreEqual("3", tmp.Get("Result"), all);

        var exec = records.Single(r => Equals(r.Get("Syscall"), "execve") && Equals(r.Get("Path"), "/bin/true"));
        CollectionAssert.AreEqual(new[] { "/bin/true", "a", "b c" }, (string[])exec.Get("Argv")!, all);

        Assert.IsTrue(records.Any(r => Equals(r.Get("Address"), "10.1.2.3:8080") && ((string)r.Get("Result")!).StartsWith('-')), all);
        Assert.IsTrue(records.Any(r => Equals(r.Get("Address"), "/run/audit.sock")), all);
    }

    private static async Task<(string Output, string Error, ExitStatus Status)> RunAsync(ISandbox sandbox, string path, params string[] arguments)
    {
        await using var process = await sandbox.StartAsync(new ProcessSpec(path, arguments));
        process.StandardInput!.Dispose();
        var output = new StreamReader(process.StandardOutput!).ReadToEndAsync();
        var error = new StreamReader(process.StandardError!).ReadToEndAsync();
        var status = await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(120));
        return (await output, await error, status);
    }

    /// <summary>Keeps every log record with its structured values.</summary>
    private sealed class CapturingLoggerProvider : ILoggerProvider
    {
        public System.Collections.Concurrent.ConcurrentQueue<Record> Records { get; } = new();

        public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

        public void Dispose()
        {
        }

        private sealed class Logger(CapturingLoggerProvider owner, string category) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

            public bool IsEnabled(LogLevel logLevel) => true;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
            {
                var values = state as IReadOnlyList<KeyValuePair<string, object?>> ?? [];
                owner.Records.Enqueue(new Record(category, logLevel, formatter(state, exception), values.ToDictionary(kv => kv.Key, kv => kv.Value)));
            }
        }
    }

    private sealed record Record(string Category, LogLevel Level, string Message, Dictionary<string, object?> Values)
    {
        public object? Get(string key) => Values.TryGetValue(key, out var value) ? value : null;
    }
}
