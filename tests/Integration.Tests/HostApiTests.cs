using System.Globalization;

namespace AppKernel.Integration.Tests;

/// <summary>
/// The host API as an application meets it: cancellation and disposal leave no host process
/// behind; after exit, the status, CPU time, peak memory and the limit hit; the audit event stream.
/// </summary>
[TestClass]
public sealed class HostApiTests
{
    private static Task<ISandbox> Create(Action<SandboxOptions>? configure = null) =>
        Sandboxes.Factory.CreateAsync(o =>
        {
            o.Platform = "ptrace";
            o.Mounts.Add(new MountSpec { Target = Repository.Artifacts, Type = "bind", Source = Repository.Artifacts, ReadOnly = true });
            configure?.Invoke(o);
        });

    [TestMethod]
    public async Task CancellingWaitForExitThenDisposingLeavesNoHostProcessBehind()
    {
        var before = HostProcesses.Descendants();
        var sandbox = await Create();
        var process = await sandbox.StartAsync(new ProcessSpec("/bin/sh", "-c", "sleep 1000 & sleep 1000; wait"));
        using (var cancel = new CancellationTokenSource(TimeSpan.FromMilliseconds(300)))
        {
            await Assert.ThrowsAsync<OperationCanceledException>(() => process.WaitForExitAsync(cancel.Token));
        }

        Assert.IsFalse(process.HasExited, "cancelling the wait does not end the program");
        var ours = HostProcesses.Descendants().Except(before).ToArray();
        Assert.IsNotEmpty(ours, "the sandbox runs host processes (Gofer, stubs)");

        await process.DisposeAsync();
        Assert.IsTrue(process.HasExited);
        await sandbox.DisposeAsync();
        HostProcesses.AssertGone(ours);
    }

    [TestMethod]
    public async Task DisposingASandboxKillsAndReapsEveryProgramAndHostProcess()
    {
        var before = HostProcesses.Descendants();
        var sandbox = await Create();
        var process = await sandbox.StartAsync(new ProcessSpec("/bin/sh", "-c", "sleep 1000 & sleep 1000 & echo started; wait"));
        using (var reader = new StreamReader(process.StandardOutput!, leaveOpen: true))
        {
            Assert.AreEqual("started", await reader.ReadLineAsync());
        }

        var ours = HostProcesses.Descendants().Except(before).ToArray();
        await sandbox.DisposeAsync();
        Assert.IsTrue(process.HasExited, "the sandbox's programs end with it");
        Assert.AreEqual(ExitStatus.Killed(9), await process.WaitForExitAsync());
        HostProcesses.AssertGone(ours);
        await process.DisposeAsync();
    }

    [TestMethod]
    public async Task ACancelledWaitForAllExitedThrows()
    {
        await using var sandbox = await Create();
        await using var process = await sandbox.StartAsync(new ProcessSpec("/bin/sleep", "1000"));
        using var cancel = new CancellationTokenSource(TimeSpan.FromMilliseconds(100));
        await Assert.ThrowsAsync<OperationCanceledException>(() => sandbox.WaitForAllExitedAsync(cancel.Token));
        sandbox.KillAll();
        await sandbox.WaitForAllExitedAsync().WaitAsync(TimeSpan.FromSeconds(30));
    }

    [TestMethod]
    public async Task AfterExitTheProcessReportsCpuTimeAndPeakMemory()
    {
        await using var sandbox = await Create();
        // 64 MiB touched by a child the shell reaps: its peak counts for the shell too.
        await using var process = await sandbox.StartAsync(new ProcessSpec("/bin/sh", "-c", $"{Fixtures.Path("memhog")} 64; exit 5"));
        process.StandardInput!.Dispose();
        var output = process.StandardOutput!.CopyToAsync(Stream.Null);
        var status = await process.WaitForExitAsync();
        await output;
        Assert.AreEqual(ExitStatus.Exited(5), status);
        var usage = process.ResourceUsage;
        Assert.IsGreaterThanOrEqualTo(64L << 20, usage.PeakMemoryBytes, usage.ToString());
        Assert.IsLessThan(256L << 20, usage.PeakMemoryBytes, usage.ToString());
        Assert.IsGreaterThan(TimeSpan.Zero, usage.CpuTime, usage.ToString());
        Assert.AreEqual(SandboxLimit.None, usage.LimitHit);
        Assert.AreEqual(SandboxLimit.None, sandbox.LimitHit);
    }

    [TestMethod]
    public async Task TheMemoryLimitIsReportedAsTheLimitHit()
    {
        var (status, usage) = await RunToEnd(Fixtures.Path("memhog"), ["2048"], o => o.Limits.MemoryBytes = 64L << 20);
        Assert.AreEqual(ExitStatus.Killed(9), status);
        Assert.AreEqual(SandboxLimit.Memory, usage.LimitHit);
    }

    [TestMethod]
    public async Task TheTaskLimitIsReportedAsTheLimitHit()
    {
        var (status, usage) = await RunToEnd(Fixtures.Path("forkbomb"), [], o => o.Limits.Tasks = 8);
        Assert.AreEqual(ExitStatus.Exited(0), status);
        Assert.AreEqual(SandboxLimit.Tasks, usage.LimitHit);
    }

    [TestMethod]
    public async Task TheCpuLimitIsReportedAsTheLimitHit()
    {
        var (status, usage) = await RunToEnd(Fixtures.Path("cpulimit"), ["none"], o => o.Limits.CpuSeconds = 0.3);
        Assert.AreEqual(24, status.Signal, status.ToString());
        Assert.AreEqual(SandboxLimit.Cpu, usage.LimitHit);
        Assert.IsGreaterThanOrEqualTo(TimeSpan.FromSeconds(0.3), usage.CpuTime, usage.ToString());
    }

    [TestMethod]
    public async Task TheWallLimitIsReportedAsTheLimitHit()
    {
        var (status, usage) = await RunToEnd("/bin/sleep", ["1000"], o => o.Limits.WallSeconds = 0.5);
        Assert.AreEqual(ExitStatus.Killed(9), status);
        Assert.AreEqual(SandboxLimit.Wall, usage.LimitHit);
    }

    [TestMethod]
    public async Task TheOutputLimitIsReportedAsTheLimitHit()
    {
        var (status, usage) = await RunToEnd("/bin/sh", ["-c", "while :; do echo 0123456789abcdef0123456789abcdef; done"], o => o.Limits.OutputBytes = 4096);
        Assert.AreEqual(25, status.Signal, status.ToString()); // SIGXFSZ
        Assert.AreEqual(SandboxLimit.Output, usage.LimitHit);
    }

    [TestMethod]
    public async Task AuditEventsRecordExecOpenAndDeniedCallsWithTheirArguments()
    {
        await using var sandbox = await Create(o =>
        {
            o.AuditEvents = true;
            o.Uid = 1000;
            o.Gid = 1000;
        });
        await using var process = await sandbox.StartAsync(new ProcessSpec("/bin/sh", "-c", "cat /etc/hostname > /tmp/copy; echo x > /etc/appkernel-denied; mkdir /etc/appkernel-denied-dir; /bin/true one two"));
        process.StandardInput!.Dispose();
        _ = process.StandardOutput!.CopyToAsync(Stream.Null);
        _ = process.StandardError!.CopyToAsync(Stream.Null);
        await process.WaitForExitAsync();
        var events = new List<SandboxEvent>();
        while (sandbox.Events.TryRead(out var e))
        {
            events.Add(e);
        }

        string all = string.Join("\n", events);
        Assert.IsTrue(events.Any(e => e.Kind == SandboxEventKind.Exec && e.Path == "/bin/true" && e.Arguments!.SequenceEqual(["/bin/true", "one", "two"]) && e.Errno is null), all);
        Assert.IsTrue(events.Any(e => e.Kind == SandboxEventKind.Open && e.Path == "/etc/hostname" && (e.Flags & 3) == 0 && e.Errno is null), all);
        Assert.IsTrue(events.Any(e => e.Kind == SandboxEventKind.Open && e.Path == "/tmp/copy" && (e.Flags & 0x41) == 0x41 && e.Errno is null), all);
        Assert.IsTrue(events.Any(e => e.Kind == SandboxEventKind.Open && e.Path == "/etc/appkernel-denied" && e.Errno == Errno.EACCES && e.IsDenied), all);
        Assert.IsTrue(events.Any(e => e.Kind == SandboxEventKind.Denied && e.SyscallName == "mkdir" && e.Errno == Errno.EACCES), all);
        Assert.AreEqual(0, sandbox.DroppedEvents);
    }

    [TestMethod]
    public async Task AuditEventsDecodeConnectAddresses()
    {
        await using var sandbox = await Create(o => o.AuditEvents = true);
        await using var process = await sandbox.StartAsync(new ProcessSpec(Fixtures.Path("auditconnect")));
        process.StandardInput!.Dispose();
        var output = new StreamReader(process.StandardOutput!).ReadToEndAsync();
        await process.WaitForExitAsync();
        Assert.AreEqual("inet: -1 failed as expected\nunix: -1 failed as expected\n", await output);
        var connects = new List<SandboxEvent>();
        while (sandbox.Events.TryRead(out var e))
        {
            if (e.Kind == SandboxEventKind.Connect)
            {
                connects.Add(e);
            }
        }

        Assert.HasCount(2, connects, string.Join("\n", connects));
        Assert.AreEqual("10.1.2.3:8080", connects[0].Address);
        Assert.AreEqual("/run/audit.sock", connects[1].Address);
        Assert.AreEqual("connect", connects[0].SyscallName);
        Assert.IsNotNull(connects[0].Errno, "connect on fd -1 fails");
    }

    [TestMethod]
    public async Task AFullEventChannelDropsAndCountsInsteadOfBlockingTheProgram()
    {
        await using var sandbox = await Create(o =>
        {
            o.AuditEvents = true;
            o.AuditEventCapacity = 4;
        });
        await using var process = await sandbox.StartAsync(new ProcessSpec("/bin/sh", "-c", "for i in 1 2 3 4 5 6 7 8 9 10; do cat /etc/hostname; done"));
        process.StandardInput!.Dispose();
        _ = process.StandardOutput!.CopyToAsync(Stream.Null);
        Assert.AreEqual(ExitStatus.Exited(0), await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(60)));
        int read = 0;
        while (sandbox.Events.TryRead(out _))
        {
            read++;
        }

        Assert.AreEqual(4, read);
        Assert.IsGreaterThanOrEqualTo(10, sandbox.DroppedEvents);
        await sandbox.DisposeAsync();
        Assert.IsTrue(sandbox.Events.Completion.IsCompleted, "the stream completes with the sandbox");
    }

    [TestMethod]
    public async Task WithoutAuditEventsTheStreamStaysEmpty()
    {
        var sandbox = await Create();
        await using (var process = await sandbox.StartAsync(new ProcessSpec("/bin/true")))
        {
            await process.WaitForExitAsync();
        }

        Assert.IsFalse(sandbox.Events.TryRead(out _));
        await sandbox.DisposeAsync();
        Assert.IsTrue(sandbox.Events.Completion.IsCompleted);
    }

    private static async Task<(ExitStatus Status, ResourceUsage Usage)> RunToEnd(string path, string[] arguments, Action<SandboxOptions> configure)
    {
        await using var sandbox = await Create(configure);
        await using var process = await sandbox.StartAsync(new ProcessSpec(path, arguments));
        process.StandardInput!.Dispose();
        var output = process.StandardOutput!.CopyToAsync(Stream.Null);
        var error = process.StandardError!.CopyToAsync(Stream.Null);
        var status = await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(60));
        await Task.WhenAll(output, error).WaitAsync(TimeSpan.FromSeconds(30));
        return (status, process.ResourceUsage);
    }
}

/// <summary>The host processes below this one (children, grandchildren...), read from /proc.</summary>
internal static class HostProcesses
{
    public static HashSet<int> Descendants()
    {
        var parents = new Dictionary<int, int>();
        foreach (var directory in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(directory), NumberStyles.None, CultureInfo.InvariantCulture, out int pid))
            {
                continue;
            }

            try
            {
                string stat = File.ReadAllText(Path.Combine(directory, "stat"));
                // pid (comm) state ppid ...: comm may hold spaces and parentheses; ppid follows the last ')'.
                var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
                parents[pid] = int.Parse(fields[1], CultureInfo.InvariantCulture);
            }
            catch (IOException)
            {
            }
        }

        var result = new HashSet<int>();
        var queue = new Queue<int>([Environment.ProcessId]);
        while (queue.Count > 0)
        {
            int parent = queue.Dequeue();
            foreach (var (pid, ppid) in parents)
            {
                if (ppid == parent && result.Add(pid))
                {
                    queue.Enqueue(pid);
                }
            }
        }

        return result;
    }

    /// <summary>Every process in <paramref name="pids"/> has exited and been reaped (no zombie left either).</summary>
    public static void AssertGone(IEnumerable<int> pids)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        var left = pids.ToList();
        while (true)
        {
            left = left.Where(pid => Directory.Exists($"/proc/{pid}")).ToList();
            if (left.Count == 0)
            {
                return;
            }

            if (DateTime.UtcNow > deadline)
            {
                Assert.Fail("host processes left behind: " + string.Join(", ", left.Select(Describe)));
            }

            Thread.Sleep(50);
        }
    }

    private static string Describe(int pid)
    {
        try
        {
            return $"{pid} {File.ReadAllText($"/proc/{pid}/stat").Split(' ').Take(3).Aggregate((a, b) => a + " " + b)}";
        }
        catch (IOException)
        {
            return pid.ToString(CultureInfo.InvariantCulture);
        }
    }
}
