using AppKernel.Gofer.Protocol;
using AppKernel.Sentry.Memory;
using AppKernel.Vfs;
using FileMode = AppKernel.Vfs.FileMode;

namespace AppKernel.Gofer.Tests;

/// <summary>One Gofer serving a prepared tree read-only: lookups, attributes, reads, listings, confinement.</summary>
[TestClass]
public sealed class ReadOnlyGoferTests
{
    private static string root = string.Empty;
    private static GoferConnection gofer = null!;
    private static MemoryFile memory = null!;
    private static GoferFileSystem fs = null!;

    public TestContext TestContext { get; set; } = null!;

    [ClassInitialize]
    public static void Start(TestContext context)
    {
        root = HostFiles.TempDirectory("gofer-ro");
        HostFiles.BuildTree(root);
        gofer = GoferLauncher.Start([root], readWrite: false);
        memory = new MemoryFile(maxSize: 1L << 30);
        fs = new GoferFileSystem(gofer, 0, memory, readOnly: true);
    }

    [ClassCleanup]
    public static void Stop()
    {
        fs?.Release();
        gofer?.Dispose();
        memory?.Dispose();
        if (root.Length > 0)
        {
            Directory.Delete(root, recursive: true);
        }
    }

    private static IInode Walk(params string[] names)
    {
        IInode node = fs.Root;
        foreach (var name in names)
        {
            node = node.Lookup(name) ?? throw new AssertFailedException($"{name} not found");
        }

        return node;
    }

    [TestMethod]
    public void ReportsStartupTime()
    {
        gofer.WaitUntilReady();
        Assert.IsNotNull(gofer.StartupTime);
        TestContext.WriteLine($"gofer time to ready: {gofer.StartupTime.Value.TotalMilliseconds:0.0} ms (runtime start before Main: {gofer.RuntimeStartTime!.Value.TotalMilliseconds:0.0} ms)");
        Assert.IsTrue(gofer.StartupTime.Value > TimeSpan.Zero);
        Assert.AreEqual(1, gofer.Roots.Count);
        Assert.IsTrue(gofer.Roots[0].ReadOnly);
    }

    [TestMethod]
    public void WalkAndStatMatchTheHost()
    {
        foreach (var path in new[] { "hello.txt", "big.bin", "dir", "dir/sub", "link-to-hello", "fifo" })
        {
            var inode = Walk(path.Split('/'));
            var attributes = inode.GetAttributes();
            var host = HostFiles.Lstat(Path.Combine(root, path));
            Assert.AreEqual(host.Ino, attributes.Ino, path);
            Assert.AreEqual(host.Mode, (uint)attributes.Mode, path);
            Assert.AreEqual(host.Size, attributes.Size, path);
            Assert.AreEqual(host.Nlink, (ulong)attributes.Links, path);
            Assert.AreEqual((int)host.Uid, attributes.Uid, path);
            Assert.AreEqual(host.Mtime, attributes.ModifyTime.Seconds, path);
            Assert.AreEqual(host.MtimeNsec, attributes.ModifyTime.Nanoseconds, path);
        }

        Assert.AreEqual(HostFiles.Lstat(root).Ino, fs.Root.GetAttributes().Ino);
        Assert.IsNull(fs.Root.Lookup("no-such-file"));
        Assert.AreSame(Walk("hello.txt"), Walk("hello.txt"), "one inode object per host inode");
    }

    [TestMethod]
    public void ReadsAFileThroughTheHostDescriptor()
    {
        var file = Walk("big.bin").Open(OpenFlags.ReadOnly);
        var expected = File.ReadAllBytes(Path.Combine(root, "big.bin"));
        var buffer = new byte[expected.Length + 500];
        long offset = 0;
        long total = 0;
        long n;
        while ((n = file.Read(buffer.AsSpan((int)total, Math.Min(1000, buffer.Length - (int)total)), ref offset)) > 0)
        {
            total += n;
        }

        Assert.AreEqual(expected.Length, total);
        Assert.AreEqual(expected.Length, offset);
        CollectionAssert.AreEqual(expected, buffer[..expected.Length]);

        offset = 7;
        var hello = new byte[64];
        n = Walk("hello.txt").Open(OpenFlags.ReadOnly).Read(hello, ref offset);
        Assert.AreEqual("gofer\n", System.Text.Encoding.UTF8.GetString(hello, 0, (int)n));
        file.Release();
    }

    [TestMethod]
    public void ReadDirectoryListsExactlyTheEntriesWithTheirTypes()
    {
        var entries = Walk("dir").ReadDirectory(2).ToDictionary(e => e.Name);
        CollectionAssert.AreEquivalent(new[] { "a.txt", "b.txt", "sub" }, entries.Keys.ToArray());
        Assert.AreEqual(FileMode.Regular, entries["a.txt"].Type);
        Assert.AreEqual(FileMode.Directory, entries["sub"].Type);
        Assert.AreEqual(HostFiles.Lstat(Path.Combine(root, "dir", "a.txt")).Ino, entries["a.txt"].Ino);

        var top = fs.Root.ReadDirectory(2).ToDictionary(e => e.Name);
        CollectionAssert.AreEquivalent(
            new[] { "hello.txt", "big.bin", "dir", "many", "link-to-hello", "escape", "escape-dir", "fifo" }, top.Keys.ToArray());
        Assert.AreEqual(FileMode.Symlink, top["escape"].Type);
        Assert.AreEqual(FileMode.Symlink, top["escape-dir"].Type);
        Assert.AreEqual(FileMode.Fifo, top["fifo"].Type);
        Assert.IsTrue(top.Values.All(e => e.NextOffset >= 2));
    }

    [TestMethod]
    public void DirectoryCookiesResumeTheListing()
    {
        var many = Walk("many");
        var all = many.ReadDirectory(2).ToList();
        Assert.AreEqual(300, all.Count);
        Assert.AreEqual(300, all.Select(e => e.Name).Distinct().Count());
        Assert.IsTrue(all.All(e => e.NextOffset >= 2));
        foreach (int k in new[] { 0, 1, 99, 150, 298, 299 })
        {
            var rest = many.ReadDirectory(all[k].NextOffset).Select(e => e.Name).ToList();
            CollectionAssert.AreEqual(all.Skip(k + 1).Select(e => e.Name).ToList(), rest, $"resuming after entry {k}");
        }

        // Enumerating partially (as getdents with a small buffer does) and resuming from the last cookie.
        var seen = new List<string>();
        long cookie = 2;
        while (true)
        {
            var chunk = many.ReadDirectory(cookie).Take(7).ToList();
            if (chunk.Count == 0)
            {
                break;
            }

            seen.AddRange(chunk.Select(e => e.Name));
            cookie = chunk[^1].NextOffset;
        }

        CollectionAssert.AreEqual(all.Select(e => e.Name).ToList(), seen);
    }

    [TestMethod]
    public void ReadLinkReturnsTheTargetWithoutFollowing()
    {
        var escape = Walk("escape");
        Assert.AreEqual(FileMode.Symlink, escape.GetAttributes().Mode.Type());
        Assert.AreEqual("/etc/passwd", escape.ReadLink());
        Assert.AreEqual("hello.txt", Walk("link-to-hello").ReadLink());
        Assert.AreEqual(Errno.ELOOP, Assert.ThrowsExactly<ErrnoException>(() => escape.Open(OpenFlags.ReadOnly)).Errno);
        Assert.AreEqual(Errno.EINVAL, Assert.ThrowsExactly<ErrnoException>(() => Walk("hello.txt").ReadLink()).Errno);
    }

    [TestMethod]
    public void EscapeAttemptsFail()
    {
        // Through the filesystem API.
        Assert.AreEqual(Errno.EINVAL, Assert.ThrowsExactly<ErrnoException>(() => fs.Root.Lookup("..")).Errno);
        Assert.AreEqual(Errno.EINVAL, Assert.ThrowsExactly<ErrnoException>(() => fs.Root.Lookup("dir/a.txt")).Errno);
        Assert.AreEqual(Errno.ENOTDIR, Assert.ThrowsExactly<ErrnoException>(() => Walk("escape-dir").Lookup("passwd")).Errno);

        // Straight at the protocol, as a subverted Sentry would.
        var rootNode = ((GoferInode)fs.Root).Node;
        Assert.AreEqual((int)Errno.EINVAL, gofer.Walk(rootNode, "..", out _));
        Assert.AreEqual((int)Errno.EINVAL, gofer.Walk(rootNode, ".", out _));
        Assert.AreEqual((int)Errno.EINVAL, gofer.Walk(rootNode, "", out _));
        Assert.AreEqual((int)Errno.EINVAL, gofer.Walk(rootNode, "dir/a.txt", out _));
        Assert.AreEqual((int)Errno.EINVAL, gofer.Walk(rootNode, "../../etc/passwd", out _));
        Assert.AreEqual((int)Errno.EINVAL, gofer.Walk(rootNode, "a\0b", out _));
        Assert.AreEqual((int)Errno.ENAMETOOLONG, gofer.Walk(rootNode, new string('n', 256), out _));
        Assert.AreEqual((int)Errno.EBADF, gofer.Walk(123456789, "hello.txt", out _));

        Assert.AreEqual(0, gofer.Walk(rootNode, "escape", out var escape));
        Assert.AreEqual(Host.S_IFLNK, escape.Attributes.Type);
        Assert.AreEqual((int)Errno.ELOOP, gofer.Open(escape.Node, Host.O_RDONLY, out int fd, out _));
        Assert.AreEqual(-1, fd);
        Assert.AreEqual(0, gofer.Walk(rootNode, "escape-dir", out var escapeDir));
        Assert.AreEqual((int)Errno.ENOTDIR, gofer.Walk(escapeDir.Node, "passwd", out _));
        Assert.AreEqual((int)Errno.ENOTDIR, gofer.ReadDir(escapeDir.Node, 0, withAttributes: false, [], out _));

        Assert.AreEqual((int)Errno.EINVAL, gofer.Attach(1, out _));
        Assert.AreEqual((int)Errno.EINVAL, gofer.Attach(-1, out _));
        Assert.ThrowsExactly<GoferException>(() => new GoferFileSystem(gofer, 1, memory, readOnly: true));

        // FIFOs are not opened through the gofer (a blocking open would hang a gofer thread).
        Assert.AreEqual(0, gofer.Walk(rootNode, "fifo", out var fifo));
        Assert.AreEqual((int)Errno.ENXIO, gofer.Open(fifo.Node, Host.O_RDONLY, out _, out _));
    }

    [TestMethod]
    public void EveryMutationFailsWithErofs()
    {
        var dir = Walk("dir");
        var hello = Walk("hello.txt");
        var owner = new FileOwner(0, 0);
        var cases = new (string Name, Action Action)[]
        {
            ("create", () => dir.CreateNode("new", FileMode.Regular | (FileMode)0x1a4, 0, owner)),
            ("mknod", () => dir.CreateNode("p", FileMode.Fifo | (FileMode)0x1a4, 0, owner)),
            ("mkdir", () => dir.CreateDirectory("d", (FileMode)0x1ed, owner)),
            ("symlink", () => dir.CreateSymlink("s", "a.txt", owner)),
            ("link", () => dir.Link("l", hello)),
            ("unlink", () => dir.Unlink("a.txt")),
            ("rmdir", () => dir.RemoveDirectory("sub")),
            ("rename", () => dir.Rename("a.txt", dir, "c.txt", RenameFlags.None)),
            ("chmod", () => hello.SetAttributes(new AttributeUpdate(AttributeMask.Mode, Mode: (FileMode)0x1ff))),
            ("chown", () => hello.SetAttributes(new AttributeUpdate(AttributeMask.Uid | AttributeMask.Gid, Uid: 1, Gid: 1))),
            ("truncate", () => hello.SetAttributes(new AttributeUpdate(AttributeMask.Size, Size: 0))),
            ("utimes", () => hello.SetAttributes(new AttributeUpdate(AttributeMask.ModifyTime, ModifyTime: new Timespec(1, 0)))),
            ("open for writing", () => hello.Open(OpenFlags.WriteOnly)),
            ("open read-write", () => hello.Open(OpenFlags.ReadWrite)),
        };
        foreach (var (name, action) in cases)
        {
            Assert.AreEqual(Errno.EROFS, Assert.ThrowsExactly<ErrnoException>(action, name).Errno, name);
        }

        // The Gofer enforces it too, whatever the client claims.
        ulong d = ((GoferInode)dir).Node, h = ((GoferInode)hello).Node;
        Assert.AreEqual((int)Errno.EROFS, gofer.Create(d, "new", 0x1a4, Host.O_RDWR, -1, -1, out _, out _));
        Assert.AreEqual((int)Errno.EROFS, gofer.Mkdir(d, "new", 0x1ed, -1, -1, out _));
        Assert.AreEqual((int)Errno.EROFS, gofer.Mknod(d, "new", Host.S_IFIFO | 0x1a4, 0, -1, -1, out _));
        Assert.AreEqual((int)Errno.EROFS, gofer.Symlink(d, "new", "x", -1, -1, out _));
        Assert.AreEqual((int)Errno.EROFS, gofer.Link(d, "new", h, out _));
        Assert.AreEqual((int)Errno.EROFS, gofer.Unlink(d, "a.txt", false, out _));
        Assert.AreEqual((int)Errno.EROFS, gofer.Rename(d, "a.txt", d, "z", 0, out _, out _));
        Assert.AreEqual((int)Errno.EROFS, gofer.SetAttr(h, WireSetAttr.Size, 0, -1, -1, 0, default, default, out _));
        Assert.AreEqual((int)Errno.EROFS, gofer.Open(h, Host.O_WRONLY, out _, out _));
        Assert.AreEqual((int)Errno.EROFS, gofer.Open(h, Host.O_RDONLY | Host.O_TRUNC, out _, out _));

        Assert.AreEqual("hello, gofer\n", File.ReadAllText(Path.Combine(root, "hello.txt")));
        CollectionAssert.AreEquivalent(new[] { "a.txt", "b.txt", "sub" }, Directory.GetFileSystemEntries(Path.Combine(root, "dir")).Select(Path.GetFileName).ToArray());
    }

    [TestMethod]
    public void StatfsComesFromTheHost()
    {
        var statistics = fs.GetStatistics();
        var drive = new DriveInfo(root);
        Assert.AreEqual(GoferFileSystem.V9fsMagic, statistics.Type);
        Assert.AreEqual(drive.TotalSize, statistics.Blocks * statistics.BlockSize);
        Assert.AreEqual(255, statistics.NameLength);
        Assert.AreEqual("9p", fs.TypeName);
    }

    [TestMethod]
    public void GetPagesMatchesTheFileAndZeroesPastTheEnd()
    {
        var big = Walk("big.bin");
        var expected = File.ReadAllBytes(Path.Combine(root, "big.bin"));
        var mappable = big.Open(OpenFlags.ReadOnly).Mappable;
        Assert.IsNotNull(mappable);
        var pages = new long[6];
        mappable.GetPages(0, pages);
        for (int i = 0; i < pages.Length; i++)
        {
            var page = memory.GetSpan(pages[i], 4096).ToArray();
            int start = i * 4096;
            int valid = Math.Clamp(expected.Length - start, 0, 4096);
            CollectionAssert.AreEqual(expected.Skip(start).Take(valid).ToArray(), page[..valid], $"page {i}");
            Assert.IsTrue(page[valid..].All(b => b == 0), $"page {i} past the end must be zero");
            Assert.AreEqual(2, memory.RefCount(pages[i]), "the cache's reference and the caller's");
        }

        // The same pages come back for a second mapping (one cache per inode).
        var again = new long[2];
        Walk("big.bin").Open(OpenFlags.ReadOnly).Mappable!.GetPages(4096, again);
        Assert.AreEqual(pages[1], again[0]);
        Assert.AreEqual(pages[2], again[1]);
        Assert.AreEqual(3, memory.RefCount(pages[1]));

        // read() agrees with the cache.
        var viaRead = new byte[expected.Length];
        long offset = 0;
        Assert.AreEqual(expected.Length, big.Open(OpenFlags.ReadOnly).Read(viaRead, ref offset));
        CollectionAssert.AreEqual(expected, viaRead);

        memory.DecRef(again[0], 4096);
        memory.DecRef(again[1], 4096);
        foreach (var page in pages)
        {
            memory.DecRef(page, 4096);
        }

        Assert.AreEqual(6L * 4096, fs.TrimPageCache());
        Assert.AreEqual(0, memory.RefCount(pages[0]));
    }

    [TestMethod]
    public void ConfinementIsInPlace()
    {
        gofer.WaitUntilReady();
        var status = HostFiles.ProcStatus(gofer.ProcessId);
        TestContext.WriteLine($"gofer Seccomp={status["Seccomp"]} filters={status.GetValueOrDefault("Seccomp_filters")} NoNewPrivs={status["NoNewPrivs"]}");
        Assert.AreEqual("2", status["Seccomp"], "seccomp filter mode");
        Assert.AreEqual("1", status["NoNewPrivs"]);

        // Every thread carries the filter (TSYNC).
        foreach (var task in Directory.GetDirectories($"/proc/{gofer.ProcessId}/task"))
        {
            var taskStatus = File.ReadAllLines(Path.Combine(task, "status")).First(l => l.StartsWith("Seccomp:"));
            Assert.AreEqual("2", taskStatus.Split(':')[1].Trim(), task);
        }

        var probes = gofer.SelfCheck().ToDictionary(p => p.Probe, p => p.Errno);
        foreach (var (probe, errno) in probes)
        {
            TestContext.WriteLine($"  {probe}: {(errno == 0 ? "allowed" : ((Errno)errno).ToString())}");
        }

        Assert.AreEqual(0, probes["seccomp"]);

        // When privileged, the threads that serve requests live in a network namespace of their
        // own (namespaces are per thread: the runtime's earlier threads keep the host's).
        if (probes["unshare(CLONE_NEWNET)"] == 0)
        {
            string hostNet = new FileInfo("/proc/self/ns/net").LinkTarget!;
            var tasks = Directory.GetDirectories($"/proc/{gofer.ProcessId}/task")
                .Select(task => (Name: File.ReadAllText(Path.Combine(task, "comm")).Trim(), Net: new FileInfo(Path.Combine(task, "ns", "net")).LinkTarget!, Main: Path.GetFileName(task) == gofer.ProcessId.ToString()))
                .ToList();
            foreach (var task in tasks)
            {
                TestContext.WriteLine($"  thread {task.Name}: {task.Net}{(task.Net == hostNet ? " (host)" : string.Empty)}");
            }

            Assert.AreNotEqual(hostNet, tasks.Single(t => t.Main).Net, "the main (control) thread left the host network namespace");
            Assert.IsTrue(tasks.Where(t => t.Name.StartsWith("gofer conn")).All(t => t.Net != hostNet), "serving threads inherit the new namespace");
        }
        Assert.AreEqual((int)Errno.EAFNOSUPPORT, probes["socket(AF_INET)"]);
        Assert.AreEqual((int)Errno.EAFNOSUPPORT, probes["socket(AF_INET6)"]);
        Assert.AreEqual((int)Errno.EAFNOSUPPORT, probes["socket(AF_NETLINK)"]);
        Assert.AreEqual((int)Errno.EPERM, probes["execve"]);
        Assert.AreEqual((int)Errno.EPERM, probes["unshare(CLONE_NEWNS)"]);
        Assert.AreEqual((int)Errno.ENOSYS, probes["kill(1, 0)"], "not on the allow-list");
        Assert.AreEqual((int)Errno.EPERM, probes["tgkill(1, 1, 0)"], "signals only to the Gofer's own threads");
        Assert.AreEqual((int)Errno.ENOSYS, probes["truncate(path)"], "path-based calls are not on the allow-list");
        Assert.AreEqual((int)Errno.EXDEV, probes["openat2(root, \"..\")"]);
        Assert.AreEqual(0, probes["no_new_privs"]);
        Assert.AreEqual(0, probes["open attach root 0"], "the attach root stays reachable through its descriptor");
        if (Environment.UserName != "root")
        {
            Assert.AreEqual((int)Errno.EPERM, probes["pivot_root"], "unprivileged: no mount namespace");
            StringAssert.Contains(gofer.ConfinementNote, "not root");
            return;
        }

        // As root: a private mount namespace whose "/" is a read-only tmpfs holding only the
        // directories the runtime loads from; capabilities reduced to file work.
        Assert.AreEqual(string.Empty, gofer.ConfinementNote);
        Assert.AreEqual(0, probes["pivot_root"]);
        Assert.AreEqual(0, probes["drop capabilities"]);
        Assert.AreEqual((int)Errno.ENOENT, probes["stat(/etc/passwd)"]);
        Assert.AreEqual((int)Errno.ENOENT, probes["stat(/proc/self)"]);
        Assert.AreEqual((int)Errno.EROFS, probes["mkdir(/appkernel-probe)"]);
        string listing = probes.Keys.Single(k => k.StartsWith("ls /: ", StringComparison.Ordinal))["ls /: ".Length..];
        var runtimeTops = new[] { Path.GetDirectoryName(typeof(object).Assembly.Location)!, AppContext.BaseDirectory }
            .Select(p => p.Split('/', StringSplitOptions.RemoveEmptyEntries)[0]).Append("dev").Distinct().Order(StringComparer.Ordinal);
        Assert.AreEqual(string.Join(' ', runtimeTops), listing, "/ holds only the way to the runtime's directories and /dev/urandom");
        Assert.AreEqual("capabilities effective=1f bounding=1f", probes.Keys.Single(k => k.StartsWith("capabilities", StringComparison.Ordinal)));

        // Per thread: the serving threads (main and connections) are in the new mount namespace
        // with the reduced capabilities; the runtime's earlier threads are not (documented).
        string hostMnt = new FileInfo("/proc/self/ns/mnt").LinkTarget!;
        foreach (var task in Directory.GetDirectories($"/proc/{gofer.ProcessId}/task"))
        {
            string name = File.ReadAllText(Path.Combine(task, "comm")).Trim();
            bool serving = Path.GetFileName(task) == gofer.ProcessId.ToString() || name.StartsWith("gofer conn", StringComparison.Ordinal);
            string mnt = new FileInfo(Path.Combine(task, "ns", "mnt")).LinkTarget!;
            string capEff = File.ReadAllLines(Path.Combine(task, "status")).First(l => l.StartsWith("CapEff:")).Split(':')[1].Trim();
            TestContext.WriteLine($"  thread {name}: {mnt}{(mnt == hostMnt ? " (host)" : string.Empty)} CapEff={capEff}");
            if (serving)
            {
                Assert.AreNotEqual(hostMnt, mnt, name);
                Assert.AreEqual("000000000000001f", capEff, name);
            }
        }
    }
}
