using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace AppKernel.Integration.Tests;

/// <summary>--strace: one line per syscall through ILogger, decoded arguments and results.</summary>
[TestClass]
public sealed class StraceTests
{
    private sealed class Collector : ILoggerProvider, ILogger
    {
        public List<string> Lines { get; } = new();

        public ILogger CreateLogger(string categoryName) => categoryName == "AppKernel.Strace" ? this : Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance;

        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            lock (Lines)
            {
                Lines.Add(formatter(state, exception));
            }
        }

        public void Dispose()
        {
        }
    }

    [TestMethod]
    public async Task EachSyscallIsOneLineWithDecodedArgumentsAndResult()
    {
        var collector = new Collector();
        var services = new ServiceCollection();
        services.AddLogging(b => b.AddProvider(collector).SetMinimumLevel(LogLevel.Information));
        services.AddAppKernel(o => o.Strace = true).UsePtracePlatform();
        await using var provider = services.BuildServiceProvider();
        await using var sandbox = await provider.GetRequiredService<ISandboxFactory>().CreateAsync();
        var process = await sandbox.StartAsync(new ProcessSpec("/bin/cat", "/etc/hostname-that-does-not-exist", "/etc/os-release"));
        var output = process.StandardOutput!.CopyToAsync(Stream.Null);
        var status = await process.WaitForExitAsync();
        await output;
        Assert.AreEqual(1, status.ExitCode);
        string[] lines;
        lock (collector.Lines)
        {
            lines = [.. collector.Lines];
        }

        CollectionAssert.Contains(lines, "[pid 1] openat(AT_FDCWD, \"/etc/hostname-that-does-not-exist\", O_RDONLY, 00) = -1 ENOENT");
        Assert.IsTrue(lines.Any(l => l.StartsWith("[pid 1] openat(AT_FDCWD, \"/etc/os-release\", O_RDONLY", StringComparison.Ordinal) && l.EndsWith(" = 3", StringComparison.Ordinal)),
            string.Join("\n", lines.Where(l => l.Contains("openat"))));
        Assert.AreEqual("[pid 1] exit_group(1) = ?", lines[^1]);
    }
    [TestMethod]
    public async Task StraceTimesEndsEachLineWithTheCallsDuration()
    {
        var collector = new Collector();
        var services = new ServiceCollection();
        services.AddLogging(b => b.AddProvider(collector).SetMinimumLevel(LogLevel.Information));
        services.AddAppKernel(o => { o.Strace = true; o.StraceTimes = true; }).UsePtracePlatform();
        await using var provider = services.BuildServiceProvider();
        await using var sandbox = await provider.GetRequiredService<ISandboxFactory>().CreateAsync();
        var process = await sandbox.StartAsync(new ProcessSpec("/bin/sleep", "0.3"));
        var status = await process.WaitForExitAsync();
        Assert.AreEqual(0, status.ExitCode);
        string[] lines;
        lock (collector.Lines)
        {
            lines = [.. collector.Lines];
        }

        var timed = new System.Text.RegularExpressions.Regex(@" = \S+.* <(\d+\.\d{6})>$");
        foreach (string line in lines.Where(l => !l.EndsWith(" = ?", StringComparison.Ordinal)))
        {
            Assert.IsTrue(timed.IsMatch(line), line);
        }

        // The sleep itself is one call that took at least the 0.3 s it waited; the others are quick.
        string sleep = lines.Single(l => l.Contains("nanosleep(", StringComparison.Ordinal));
        double seconds = double.Parse(timed.Match(sleep).Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
        Assert.IsTrue(seconds is >= 0.29 and < 10, sleep);
    }
}
