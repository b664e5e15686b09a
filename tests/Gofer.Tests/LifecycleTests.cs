using System.Diagnostics;
using AppKernel.Sentry.Memory;
using AppKernel.Vfs;

namespace AppKernel.Gofer.Tests;

/// <summary>Starting, failing, dying and disposing Gofers; timings are printed, never asserted.</summary>
[TestClass]
public sealed class LifecycleTests
{
    private string root = string.Empty;

    public TestContext TestContext { get; set; } = null!;

    [TestInitialize]
    public void CreateRoot()
    {
        root = HostFiles.TempDirectory("gofer-life");
        HostFiles.BuildTree(root);
    }

    [TestCleanup]
    public void RemoveRoot() => Directory.Delete(root, recursive: true);

    [TestMethod]
    public void KillingTheGoferFailsTheNextRequestQuickly()
    {
        using var memory = new MemoryFile(maxSize: 1L << 26);
        using var gofer = GoferLauncher.Start([root], readWrite: false);
        var fs = new GoferFileSystem(gofer, 0, memory, readOnly: true);
        Assert.IsNotNull(fs.Root.Lookup("hello.txt"));
        int pid = gofer.ProcessId;
        Assert.AreEqual(0, HostFiles.Kill(pid, 9));

        var clock = Stopwatch.StartNew();
        var error = Assert.ThrowsExactly<ErrnoException>(() => fs.Root.Lookup("big.bin"));
        clock.Stop();
        TestContext.WriteLine($"first request after SIGKILL failed in {clock.Elapsed.TotalMilliseconds:0.0} ms: {error.Message}");
        Assert.AreEqual(Errno.EIO, error.Errno);
        StringAssert.Contains(error.Message, "signal 9");
        Assert.IsTrue(clock.Elapsed < TimeSpan.FromSeconds(2));

        clock.Restart();
        Assert.AreEqual(Errno.EIO, Assert.ThrowsExactly<ErrnoException>(() => fs.Root.Lookup("dir")).Errno);
        Assert.IsTrue(clock.Elapsed < TimeSpan.FromMilliseconds(100), "later requests fail at once");
        Assert.IsNotNull(gofer.FailureReason);
    }

    [TestMethod]
    public void APendingRequestFailsWhenTheGoferDies()
    {
        using var memory = new MemoryFile(maxSize: 1L << 26);
        using var gofer = GoferLauncher.Start([root], readWrite: false);
        var fs = new GoferFileSystem(gofer, 0, memory, readOnly: true);
        int pid = gofer.ProcessId;
        Assert.AreEqual(0, HostFiles.Kill(pid, 19)); // SIGSTOP: the request below waits for an answer.
        var pending = Task.Factory.StartNew(() => fs.Root.Lookup("hello.txt"), TaskCreationOptions.LongRunning);
        Assert.IsFalse(pending.Wait(300), "a stopped gofer cannot answer");
        var clock = Stopwatch.StartNew();
        Assert.AreEqual(0, HostFiles.Kill(pid, 9));
        var error = Assert.ThrowsExactly<AggregateException>(() => pending.Wait(TimeSpan.FromSeconds(5)));
        TestContext.WriteLine($"pending request failed {clock.Elapsed.TotalMilliseconds:0.0} ms after SIGKILL: {error.InnerException!.Message}");
        Assert.AreEqual(Errno.EIO, ((ErrnoException)error.InnerException).Errno);
    }

    [TestMethod]
    public void DisposeReapsTheGofer()
    {
        var gofer = GoferLauncher.Start([root], readWrite: false);
        gofer.WaitUntilReady();
        int pid = gofer.ProcessId;
        Assert.IsTrue(Directory.Exists($"/proc/{pid}"));
        var clock = Stopwatch.StartNew();
        gofer.Dispose();
        TestContext.WriteLine($"dispose (gofer exit on EOF + waitpid) took {clock.Elapsed.TotalMilliseconds:0.0} ms");
        Assert.IsFalse(Directory.Exists($"/proc/{pid}"), "exited and reaped: no zombie left");
        Assert.AreEqual(Errno.EIO, Assert.ThrowsExactly<ErrnoException>(() => gofer.Walk(1, "x", out _)).Errno);
    }

    [TestMethod]
    public void TheGoferExitsWhenTheSentryGoesAway()
    {
        var gofer = GoferLauncher.Start([root], readWrite: false);
        gofer.WaitUntilReady();
        int pid = gofer.ProcessId;
        gofer.AbandonForTest(); // What the Sentry's death does to the sockets.
        Assert.IsTrue(gofer.WaitForExitForTest(TimeSpan.FromSeconds(5)), "the gofer exits on end of file");
        Assert.IsFalse(Directory.Exists($"/proc/{pid}"));
        gofer.Dispose();
    }

    [TestMethod]
    public void AStartFailureNamesTheCause()
    {
        string missing = Path.Combine(root, "no", "such", "root");
        using var gofer = GoferLauncher.Start([root, missing], readWrite: false);
        var error = Assert.ThrowsExactly<GoferException>(gofer.WaitUntilReady);
        TestContext.WriteLine(error.Message);
        StringAssert.Contains(error.Message, missing);
        StringAssert.Contains(error.Message, "ENOENT");
        Assert.AreEqual(Errno.EIO, Assert.ThrowsExactly<ErrnoException>(() => gofer.Walk(1, "x", out _)).Errno);
        var noHost = Assert.ThrowsExactly<GoferException>(() => GoferLauncher.Start([new GoferRoot(root, true)], new GoferLaunchOptions { DotnetHostPath = "/no/dotnet" }));
        StringAssert.Contains(noHost.Message, "/no/dotnet");
    }

    [TestMethod]
    public void MountPointsBelowARootAreNotCrossed()
    {
        string mountPoint = Path.Combine(root, "mnt");
        Directory.CreateDirectory(mountPoint);
        if (HostFiles.Mount("gofer-test", mountPoint, "tmpfs", 0, "size=64k") != 0)
        {
            Assert.Inconclusive("mounting a tmpfs needs CAP_SYS_ADMIN");
        }

        try
        {
            File.WriteAllText(Path.Combine(mountPoint, "inside"), "x");
            using var memory = new MemoryFile(maxSize: 1L << 26);
            using var gofer = GoferLauncher.Start([root], readWrite: false);
            var fs = new GoferFileSystem(gofer, 0, memory, readOnly: true);
            // The mount point shows as an empty directory: what is mounted there stays out of reach.
            var shown = fs.Root.Lookup("mnt");
            Assert.IsNotNull(shown);
            Assert.IsTrue(shown.GetAttributes().Mode.IsDirectory());
            Assert.IsNull(shown.Lookup("inside"));
            Assert.IsFalse(shown.ReadDirectory(2).Any());
            Assert.AreEqual((int)Errno.EXDEV, gofer.Walk(((GoferInode)fs.Root).Node, "mnt", out _));
            Assert.IsTrue(fs.Root.ReadDirectory(2).Any(e => e.Name == "mnt"), "the mount point is listed, not entered");
        }
        finally
        {
            HostFiles.Unmount(mountPoint, 2 /* MNT_DETACH */);
        }
    }

    [TestMethod]
    public void TheBindTypeMountsTheRootNamedBySource()
    {
        string volume = HostFiles.TempDirectory("gofer-volume");
        try
        {
            File.WriteAllText(Path.Combine(volume, "data"), "volume");
            GoferRoot[] roots = [new(root, ReadOnly: true), new(volume, ReadOnly: false)];
            using var memory = new MemoryFile(maxSize: 1L << 26);
            using var gofer = GoferLauncher.Start(roots);
            var type = new GoferFileSystemType(gofer, roots);
            var services = new NoServices();
            var fs = (GoferFileSystem)type.Mount(new FileSystemMountContext(volume + "/", ReadOnly: false, null, memory, services));
            Assert.AreEqual(1, fs.RootIndex);
            Assert.IsFalse(fs.ReadOnly);
            Assert.IsNotNull(fs.Root.Lookup("data"));
            var rootFs = (GoferFileSystem)type.Mount(new FileSystemMountContext(root, ReadOnly: false, null, memory, services));
            Assert.IsTrue(rootFs.ReadOnly, "a read-only root stays read-only");
            Assert.IsNotNull(rootFs.Root.Lookup("hello.txt"));
            Assert.AreEqual(Errno.ENOENT, Assert.ThrowsExactly<ErrnoException>(() => type.Mount(new FileSystemMountContext("/etc", false, null, memory, services))).Errno);
        }
        finally
        {
            Directory.Delete(volume, recursive: true);
        }
    }

    [TestMethod]
    public void StartsWithoutARuntimeConfigBesideTheAssembly()
    {
        // A package consumer may lack the gofer's runtimeconfig: one is generated in a private directory.
        string copy = HostFiles.TempDirectory("gofer-copy");
        try
        {
            string source = Path.GetDirectoryName(typeof(GoferLauncher).Assembly.Location)!;
            foreach (var name in new[] { "AppKernel.Sdk.Gofer.dll", "AppKernel.Sdk.Abstractions.dll" })
            {
                File.Copy(Path.Combine(source, name), Path.Combine(copy, name));
            }

            string assembly = Path.Combine(copy, "AppKernel.Sdk.Gofer.dll");
            string? generated = GoferLauncher.FindRuntimeConfig(assembly);
            Assert.IsNotNull(generated);
            TestContext.WriteLine($"generated {generated}");
            StringAssert.Contains(File.ReadAllText(generated), "Microsoft.NETCore.App");
            Assert.AreEqual(0x41c0u, HostFiles.Lstat(Path.GetDirectoryName(generated)!).Mode, "private directory");

            using var gofer = GoferLauncher.Start([new GoferRoot(root, true)], new GoferLaunchOptions { GoferAssemblyPath = assembly });
            gofer.WaitUntilReady();
            Assert.AreEqual(0, gofer.Attach(0, out _));
            Assert.IsNull(GoferLauncher.FindRuntimeConfig(typeof(GoferLauncher).Assembly.Location), "the build's own runtimeconfig is used when present");
        }
        finally
        {
            Directory.Delete(copy, recursive: true);
        }
    }

    [TestMethod]
    public void MeasuresStartupAndRoundTrips()
    {
        var startups = new List<double>();
        for (int i = 0; i < 5; i++)
        {
            var clock = Stopwatch.StartNew();
            using var g = GoferLauncher.Start([root], readWrite: false);
            g.WaitUntilReady();
            startups.Add(g.StartupTime!.Value.TotalMilliseconds);
            TestContext.WriteLine($"start {i}: time to ready {g.StartupTime.Value.TotalMilliseconds:0.0} ms (runtime start {g.RuntimeStartTime!.Value.TotalMilliseconds:0.0} ms, confinement {g.ConfinementTime!.Value.TotalMilliseconds:0.0} ms), Start+WaitUntilReady {clock.Elapsed.TotalMilliseconds:0.0} ms");
        }

        startups.Sort();
        TestContext.WriteLine($"gofer time to ready: median {startups[2]:0.0} ms, min {startups[0]:0.0} ms");

        using var memory = new MemoryFile(maxSize: 1L << 26);
        using var gofer = GoferLauncher.Start([root], readWrite: false);
        var fs = new GoferFileSystem(gofer, 0, memory, readOnly: true);
        var rootNode = ((GoferInode)fs.Root).Node;
        var walkStat = new double[3000];
        for (int i = -500; i < walkStat.Length; i++)
        {
            long start = Stopwatch.GetTimestamp();
            Assert.AreEqual(0, gofer.Walk(rootNode, "hello.txt", out var reply));
            Assert.AreEqual(0, gofer.GetAttr(reply.Node, out _));
            if (i >= 0)
            {
                walkStat[i] = Stopwatch.GetElapsedTime(start).TotalMicroseconds;
            }

            gofer.QueueRelease(new ReleasedNode(null, reply.Node, 0, 0, null));
        }

        var lookups = new double[3000];
        for (int i = -500; i < lookups.Length; i++)
        {
            long start = Stopwatch.GetTimestamp();
            var inode = fs.Root.Lookup("big.bin");
            if (i >= 0)
            {
                lookups[i] = Stopwatch.GetElapsedTime(start).TotalMicroseconds;
            }

            Assert.IsNotNull(inode);
        }

        Array.Sort(walkStat);
        Array.Sort(lookups);
        TestContext.WriteLine($"walk+getattr (2 round trips): median {walkStat[1500]:0.0} us, p99 {walkStat[2970]:0.0} us");
        TestContext.WriteLine($"Lookup (1 round trip, interned): median {lookups[1500]:0.0} us, p99 {lookups[2970]:0.0} us");

        // Nodes the client dropped are released: the gofer does not accumulate descriptors.
        Thread.Sleep(300);
        int fds = Directory.GetFiles($"/proc/{gofer.ProcessId}/fd").Length;
        TestContext.WriteLine($"gofer descriptors after 7000 walks: {fds}");
        Assert.IsTrue(fds < 200, $"{fds} descriptors: released nodes are not closed");
    }

    [TestMethod]
    public void DroppedInodesReleaseTheirNodes()
    {
        using var memory = new MemoryFile(maxSize: 1L << 26);
        using var gofer = GoferLauncher.Start([new GoferRoot(root, true)], new GoferLaunchOptions { NodeSoftLimit = 100 });
        var fs = new GoferFileSystem(gofer, 0, memory, readOnly: true);
        var many = fs.Root.Lookup("many")!;
        var names = many.ReadDirectory(2).Select(e => e.Name).ToArray();
        LookUpAll(many, names); // The inodes are unreachable once this returns.
        long peak = gofer.LiveNodes;
        GC.Collect();
        GC.WaitForPendingFinalizers();
        Thread.Sleep(200);
        int fds = Directory.GetFiles($"/proc/{gofer.ProcessId}/fd").Length;
        TestContext.WriteLine($"live nodes: {peak} after 300 lookups, {gofer.LiveNodes} after a collection; gofer descriptors {fds}");
        Assert.IsTrue(gofer.LiveNodes < 50, $"{gofer.LiveNodes} nodes still live");
        Assert.IsTrue(fds < 60, $"{fds} descriptors left in the gofer");
        GC.KeepAlive(many);

        [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
        static void LookUpAll(IInode directory, string[] names)
        {
            foreach (var name in names)
            {
                Assert.IsNotNull(directory.Lookup(name));
            }
        }
    }

    [TestMethod]
    public void ConcurrentRequestsUseSeveralConnections()
    {
        using var memory = new MemoryFile(maxSize: 1L << 26);
        using var gofer = GoferLauncher.Start([root], readWrite: false);
        var fs = new GoferFileSystem(gofer, 0, memory, readOnly: true);
        var many = fs.Root.Lookup("many")!;
        var names = many.ReadDirectory(2).Select(e => e.Name).ToArray();
        var errors = new List<string>();
        var threads = Enumerable.Range(0, 8).Select(t => new Thread(() =>
        {
            try
            {
                for (int i = 0; i < 300; i++)
                {
                    var name = names[(i * 7 + t * 13) % names.Length];
                    var inode = many.Lookup(name) ?? throw new InvalidOperationException($"{name} missing");
                    if (inode.GetAttributes().Ino != HostFiles.Lstat(Path.Combine(root, "many", name)).Ino)
                    {
                        throw new InvalidOperationException($"{name}: wrong inode");
                    }
                }
            }
            catch (Exception e)
            {
                lock (errors)
                {
                    errors.Add(e.Message);
                }
            }
        })).ToList();
        threads.ForEach(t => t.Start());
        threads.ForEach(t => t.Join());
        TestContext.WriteLine($"connections opened: {gofer.ConnectionCount}");
        Assert.AreEqual(0, errors.Count, string.Join("; ", errors));
        Assert.IsTrue(gofer.ConnectionCount >= 1);
    }

    private sealed class NoServices : IServiceProvider
    {
        public object? GetService(Type serviceType) => null;
    }
}
