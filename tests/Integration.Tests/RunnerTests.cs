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

    private static async Task<(int Status, string Output, string Error)> RunToEnd(params string[] arguments)
    {
        using var runner = Start(arguments);
        var output = runner.StandardOutput.ReadToEndAsync();
        string error = await runner.StandardError.ReadToEndAsync().WaitAsync(TimeSpan.FromSeconds(120));
        await runner.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(120));
        return (runner.ExitCode, await output, error);
    }

    [TestMethod]
    [DynamicData(nameof(Sandboxes.Platforms), typeof(Sandboxes))]
    public async Task MountTmpfsWithASizeGivesEnospcPastIt(string platform)
    {
        // 64 KiB: the 17th 4 KiB block does not fit; df shows the size and mounts show the tmpfs.
        var (status, output, error) = await RunToEnd(
            "do", "--platform", platform, "--mount", "type=tmpfs,dst=/small,size=64k", "--",
            "/bin/sh", "-c",
            "dd if=/dev/zero of=/small/f bs=4096 count=17 2>/dev/null; echo dd $?; wc -c < /small/f; " +
            "stat -f -c '%b %S' /small; grep -c '^tmpfs /small tmpfs ' /proc/self/mounts");
        Assert.AreEqual(0, status, error);
        Assert.AreEqual("dd 1\n65536\n16 4096\n1\n", output, error);
    }

    [TestMethod]
    [DynamicData(nameof(Sandboxes.Platforms), typeof(Sandboxes))]
    public async Task MountBindReadOnlyGivesErofsAndReadWriteReachesTheHost(string platform)
    {
        string host = Directory.CreateTempSubdirectory("appkernel-mount-").FullName;
        try
        {
            File.WriteAllText(Path.Combine(host, "from-host"), "from the host\n");
            var (status, output, error) = await RunToEnd(
                "do", "--platform", platform,
                "--mount", $"type=bind,src={host},dst=/ro,ro",
                "--mount", $"type=bind,src={host},dst=/mnt/rw",
                "--", "/bin/sh", "-c",
                "cat /ro/from-host; " +
                "( echo x > /ro/new ) 2>&1 | sed 's/.*: //'; " +
                "touch /ro/from-host 2>&1 | sed 's/.*: //'; " +
                "echo written inside > /mnt/rw/from-sandbox; echo write $?; cat /ro/from-sandbox");
            Assert.AreEqual(0, status, error);
            Assert.AreEqual(
                "from the host\nRead-only file system\nRead-only file system\nwrite 0\nwritten inside\n",
                output, error);
            Assert.AreEqual("written inside\n", File.ReadAllText(Path.Combine(host, "from-sandbox")));
            Assert.IsFalse(File.Exists(Path.Combine(host, "new")));
        }
        finally
        {
            Directory.Delete(host, recursive: true);
        }
    }

    [TestMethod]
    public async Task BindStillWorksBesideMount()
    {
        string host = Directory.CreateTempSubdirectory("appkernel-bind-").FullName;
        try
        {
            File.WriteAllText(Path.Combine(host, "f"), "bound\n");
            var (status, output, error) = await RunToEnd(
                "do", "--bind", host + ":/b:ro", "--bind", host + ":/c", "--mount", "type=tmpfs,dst=/t",
                "--", "/bin/sh", "-c", "cat /b/f; echo c > /c/g; cat /b/g; echo t > /t/h; cat /t/h");
            Assert.AreEqual(0, status, error);
            Assert.AreEqual("bound\nc\nt\n", output, error);
        }
        finally
        {
            Directory.Delete(host, recursive: true);
        }
    }

    [TestMethod]
    [DataRow("dst=/x", "--mount needs type=bind or type=tmpfs (was 'dst=/x')")]
    [DataRow("type=nfs,dst=/x", "--mount: unknown type 'nfs' (bind or tmpfs)")]
    [DataRow("type=bind,dst=/x", "--mount type=bind needs src=HOST (was 'type=bind,dst=/x')")]
    [DataRow("type=tmpfs", "--mount needs dst=PATH, an absolute path inside the sandbox (was 'type=tmpfs')")]
    [DataRow("type=tmpfs,dst=x", "--mount needs dst=PATH, an absolute path inside the sandbox (was 'type=tmpfs,dst=x')")]
    [DataRow("type=tmpfs,dst=/x,size=12q", "--mount size= needs a size such as 512m")]
    [DataRow("type=tmpfs,dst=/x,size=0", "--mount size= must be positive")]
    [DataRow("type=tmpfs,dst=/x,src=/", "--mount: src= applies to type=bind only")]
    [DataRow("type=bind,src=/,dst=/x,size=1m", "--mount: size= applies to type=tmpfs only")]
    [DataRow("type=tmpfs,dst=/x,uid=3", "--mount: unknown key 'uid' in 'type=tmpfs,dst=/x,uid=3' (type, src, dst, ro, size)")]
    [DataRow("type=tmpfs,dst=/x,target=/y", "--mount: 'target' given twice in 'type=tmpfs,dst=/x,target=/y'")]
    [DataRow("type=tmpfs,,dst=/x", "--mount: empty item in 'type=tmpfs,,dst=/x'")]
    [DataRow("type=tmpfs,dst=", "--mount: dst needs a value (in 'type=tmpfs,dst=')")]
    [DataRow("type=tmpfs,dst=/x,ro=maybe", "--mount: ro takes no value or true/false (was 'maybe')")]
    public async Task MalformedMountSpecsAreUsageErrors(string spec, string message)
    {
        var (status, _, error) = await RunToEnd("do", "--mount", spec, "--", "/bin/true");
        Assert.AreEqual(125, status, error);
        Assert.AreEqual("appkernel: " + message, error.Split('\n')[0]);
        StringAssert.Contains(error, "usage: appkernel do");
    }

    [TestMethod]
    public async Task MountOfAMissingHostDirectoryFails()
    {
        var (status, _, error) = await RunToEnd("do", "--mount", "type=bind,src=/no/such/dir,dst=/x", "--", "/bin/true");
        Assert.AreEqual(125, status, error);
        StringAssert.Contains(error, "bind source '/no/such/dir' for '/x' does not exist on the host");
    }

    [TestMethod]
    public async Task UserRunsTheProgramAsThatUid()
    {
        var (status, output, error) = await RunToEnd("do", "--user", "1000:100", "--", "/bin/sh", "-c", "id -u; id -g; touch /etc/x 2>&1 | sed 's/.*: //'");
        Assert.AreEqual(0, status, error);
        Assert.AreEqual("1000\n100\nPermission denied\n", output, error);
        (status, _, error) = await RunToEnd("do", "--user", "x", "--", "/bin/true");
        Assert.AreEqual(125, status, error);
        Assert.AreEqual("appkernel: --user needs UID[:GID] as numbers (was 'x')", error.Split('\n')[0]);
    }
}
