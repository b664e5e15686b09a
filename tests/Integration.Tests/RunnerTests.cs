using System.Diagnostics;
using System.Runtime.InteropServices;

namespace AppKernel.Integration.Tests;

/// <summary>The appkernel command as a user meets it: exit statuses and signal forwarding.</summary>
[TestClass]
public sealed partial class RunnerTests
{
    private static string Runner
    {
        get
        {
            var candidates = new[] { "Release", "Debug" }
                .Select(c => Path.Combine(Repository.Root, "samples", "Runner", "bin", c, "net10.0", "appkernel"))
                .Where(File.Exists)
                .OrderByDescending(File.GetLastWriteTimeUtc)
                .ToArray();
            if (candidates.Length == 0)
            {
                Assert.Inconclusive("the appkernel runner is not built");
            }

            return candidates[0];
        }
    }

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int Kill(int pid, int signal);

    private static Process Start(params string[] arguments)
    {
        var start = new ProcessStartInfo(Runner, arguments)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
        };
        return Process.Start(start)!;
    }

    [TestMethod]
    public async Task SigintSentToTheRunnerReachesTheProgramsHandler()
    {
        // The fixtures may live under /tmp (a CI clone), which is private in the sandbox: bind them in.
        using var runner = Start("do", "--bind", Fixtures.Directory + ":ro", "--", Fixtures.Path("sigint"));
        var clock = Stopwatch.StartNew();
        string? first = await runner.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(60));
        Assert.AreEqual("ready", first);
        int killed = Kill(runner.Id, 2);
        Assert.AreEqual(0, killed, $"kill failed with errno {Marshal.GetLastPInvokeError()} after {clock.ElapsedMilliseconds} ms; exited {runner.HasExited}");
        string rest = await runner.StandardOutput.ReadToEndAsync().WaitAsync(TimeSpan.FromSeconds(60));
        await runner.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(60));
        Assert.AreEqual("got SIGINT\n", rest);
        Assert.AreEqual(42, runner.ExitCode);
    }

    [TestMethod]
    [DataRow(new[] { "do", "--", "/bin/sh", "-c", "exit 7" }, 7)]
    [DataRow(new[] { "do", "--", "/bin/sh", "-c", "/bin/sh -c 'kill -KILL $$'" }, 137)]
    [DataRow(new[] { "do", "--", "/no/such/program" }, 127)]
    [DataRow(new[] { "do", "--", "/etc/os-release" }, 126)]
    [DataRow(new[] { "do", "--no-such-option", "--", "/bin/true" }, 125)]
    [DataRow(new[] { "do", "--rootfs", "/no/such/root", "--", "/bin/true" }, 125)]
    public async Task ExitStatusesAreThePrograms(string[] arguments, int expected)
    {
        using var runner = Start(arguments);
        var output = runner.StandardOutput.ReadToEndAsync();
        string error = await runner.StandardError.ReadToEndAsync().WaitAsync(TimeSpan.FromSeconds(60));
        await runner.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(60));
        Assert.AreEqual(expected, runner.ExitCode, error);
        if (expected is 125 or 126 or 127)
        {
            StringAssert.StartsWith(error, "appkernel: ");
        }

        await output;
    }
}
