using AppKernel.Sentry.Kernel;
using AppKernel.Sentry.Memory;
using AppKernel.Sentry.Vfs;
using AppKernel.Vfs;
using FileMode = AppKernel.Vfs.FileMode;

namespace AppKernel.Gofer.Tests;

/// <summary>
/// The client's caches: readdir-plus listings that answer lookups and stats without round trips,
/// inodes walked on demand, the end-of-directory mark, and the VFS's cached names (found and
/// absent) on a gofer mount, which the sandbox's own changes update at once and host changes
/// reach after the timeout. Round trips are counted with <see cref="GoferConnection.RequestStatistics"/>.
/// </summary>
[TestClass]
[DoNotParallelize] // Round trips are counted on the class's Gofer.
public sealed class CachingTests
{
    private static readonly FileOwner Root = new(0, 0);
    private static readonly TimeSpan Timeout = TimeSpan.FromMilliseconds(300);
    private static readonly TimeSpan Long = TimeSpan.FromMinutes(5);
    private static string root = string.Empty;
    private static GoferConnection gofer = null!;
    private static MemoryFile memory = null!;

    public TestContext TestContext { get; set; } = null!;

    [ClassInitialize]
    public static void Start(TestContext context)
    {
        root = HostFiles.TempDirectory("gofer-cache");
        gofer = GoferLauncher.Start([root], readWrite: true);
        memory = new MemoryFile(maxSize: 1L << 30);
    }

    [ClassCleanup]
    public static void Stop()
    {
        gofer?.Dispose();
        memory?.Dispose();
        if (root.Length > 0)
        {
            Directory.Delete(root, recursive: true);
        }
    }

    /// <summary>A host directory for the test with <paramref name="files"/> in it, and a fresh filesystem (empty caches) whose root is that directory's parent.</summary>
    private (GoferFileSystem Fs, IInode Dir, string Host) Scratch(params string[] files) => Scratch(Long, files);

    private (GoferFileSystem Fs, IInode Dir, string Host) Scratch(TimeSpan timeout, params string[] files)
    {
        string name = TestContext.TestName!;
        string host = Path.Combine(root, name);
        Directory.CreateDirectory(host);
        foreach (var file in files)
        {
            File.WriteAllText(Path.Combine(host, file), "content of " + file);
        }

        var fs = new GoferFileSystem(gofer, 0, memory, readOnly: false, new GoferMountOptions { AttributeTimeout = timeout });
        return (fs, fs.Root.Lookup(name)!, host);
    }

    private static long RoundTrips()
    {
        long total = 0;
        foreach (var (_, value) in gofer.RequestStatistics)
        {
            total += value.Count;
        }

        return total;
    }

    private static long RoundTrips(string op) => gofer.RequestStatistics.TryGetValue(op, out var value) ? value.Count : 0;

    private static List<DirectoryEntry> List(IInode dir) => dir.ReadDirectory(2).ToList();

    [TestMethod]
    public void AListingTakesOneRoundTripAndAnswersLookupsAndStats()
    {
        var (_, dir, host) = Scratch("a", "b", "c");
        long before = RoundTrips();
        var entries = List(dir);
        CollectionAssert.AreEquivalent(new[] { "a", "b", "c" }, entries.Select(e => e.Name).ToArray());
        Assert.AreEqual(1, RoundTrips() - before, "one round trip lists the directory and says it ended");

        before = RoundTrips();
        foreach (var name in new[] { "a", "b", "c" })
        {
            var inode = dir.Lookup(name)!;
            var attributes = inode.GetAttributes();
            Assert.AreEqual(HostFiles.Lstat(Path.Combine(host, name)).Ino, attributes.Ino);
            Assert.AreEqual(("content of " + name).Length, attributes.Size);
        }

        Assert.IsNull(dir.Lookup("absent"), "a complete, fresh listing knows what is not there");
        Assert.AreEqual(0, RoundTrips() - before, "lookups and stats after a listing need no round trip");

        // A later getdents at the end cookie is answered from the end mark.
        before = RoundTrips();
        Assert.AreEqual(0, dir.ReadDirectory(entries[^1].NextOffset).Count());
        Assert.AreEqual(0, RoundTrips() - before, "the end of the directory is known");
    }

    [TestMethod]
    public void AnInodeFromAListingIsWalkedAndOpenedInOneRoundTrip()
    {
        var (_, dir, _) = Scratch("data");
        List(dir);
        var inode = (GoferInode)dir.Lookup("data")!;
        Assert.IsFalse(inode.HasNode, "known only from the listing");
        long walkOpens = RoundTrips("WalkOpen");
        long before = RoundTrips();
        var file = inode.Open(OpenFlags.ReadOnly);
        var buffer = new byte[64];
        long offset = 0;
        long n = file.Read(buffer, ref offset);
        Assert.AreEqual("content of data", System.Text.Encoding.UTF8.GetString(buffer, 0, (int)n));
        Assert.AreEqual(1, RoundTrips() - before);
        Assert.AreEqual(1, RoundTrips("WalkOpen") - walkOpens);
        Assert.IsTrue(inode.HasNode);
        Assert.AreSame(inode, dir.Lookup("data"), "one inode per host file");
    }

    [TestMethod]
    public void ASubdirectoryFromAListingIsWalkedAndListedInOneRoundTrip()
    {
        var (_, dir, host) = Scratch();
        Directory.CreateDirectory(Path.Combine(host, "sub"));
        File.WriteAllText(Path.Combine(host, "sub", "x"), "x");
        List(dir);
        var sub = dir.Lookup("sub")!;
        long before = RoundTrips();
        Assert.AreEqual("x", List(sub).Single().Name);
        Assert.AreEqual(1, RoundTrips() - before);
    }

    [TestMethod]
    public void ChangesThroughTheFileSystemRetireTheListing()
    {
        var (_, dir, host) = Scratch("old");
        List(dir);
        Assert.IsNull(dir.Lookup("new"));
        var created = dir.CreateNode("new", FileMode.Regular | (FileMode)0x1a4, 0, Root);
        Assert.AreSame(created, dir.Lookup("new"), "a name created through the filesystem is found at once");
        var old = dir.Lookup("old")!;
        dir.Rename("old", dir, "renamed", RenameFlags.None);
        Assert.IsNull(dir.Lookup("old"));
        Assert.AreSame(old, dir.Lookup("renamed"));
        Assert.IsTrue(File.Exists(Path.Combine(host, "renamed")));
        Assert.AreEqual("content of old", ReadAll(old), "an inode known from the listing still reaches its file after a rename");
    }

    [TestMethod]
    public void AFileReplacedOnTheHostAfterTheListingIsStale()
    {
        var (_, dir, host) = Scratch("victim");
        List(dir);
        var inode = dir.Lookup("victim")!;
        File.Delete(Path.Combine(host, "victim"));
        File.WriteAllText(Path.Combine(host, "victim-new"), "other");
        File.Move(Path.Combine(host, "victim-new"), Path.Combine(host, "victim"));
        Assert.AreEqual(Errno.ESTALE, Assert.ThrowsExactly<ErrnoException>(() => inode.Open(OpenFlags.ReadOnly)).Errno);
    }

    [TestMethod]
    public void HostChangesToAListedDirectoryAreSeenAfterTheTimeout()
    {
        var (_, dir, host) = Scratch(Timeout, "kept");
        List(dir);
        File.WriteAllText(Path.Combine(host, "later"), "later");
        Thread.Sleep(Timeout + TimeSpan.FromMilliseconds(100));
        Assert.IsNotNull(dir.Lookup("later"), "the listing expired");
        Assert.AreEqual(2, List(dir).Count);
    }

    [TestMethod]
    public void TheVfsForgetsAnAbsentNameWhenTheSandboxCreatesIt()
    {
        Scratch();
        var (vfs, context) = Mounted(out _);
        string path = "/" + TestContext.TestName + "/made";
        Assert.AreEqual(Errno.ENOENT, Assert.ThrowsExactly<ErrnoException>(() => vfs.Resolve(context, path, followFinal: true)).Errno);
        vfs.MakeDirectory(0, context, path, (FileMode)0x1ed);
        Assert.IsTrue(vfs.Resolve(context, path, followFinal: true).Inode.GetAttributes().Mode.IsDirectory(), "the negative entry is gone at once");
    }

    [TestMethod]
    public void TheVfsSeesAHostCreateAndRemoveAfterTheTimeout()
    {
        var (_, _, host) = Scratch(Timeout, "gone");
        var (vfs, context) = Mounted(out _);
        string dir = "/" + TestContext.TestName;
        Assert.AreEqual(Errno.ENOENT, Assert.ThrowsExactly<ErrnoException>(() => vfs.Resolve(context, dir + "/made-on-host", followFinal: true)).Errno);
        vfs.Resolve(context, dir + "/gone", followFinal: true);
        File.WriteAllText(Path.Combine(host, "made-on-host"), "host");
        File.Delete(Path.Combine(host, "gone"));
        Thread.Sleep(Timeout + TimeSpan.FromMilliseconds(100));
        Assert.AreEqual("host", ReadAll(vfs.Resolve(context, dir + "/made-on-host", followFinal: true).Inode), "the cached absent name expired");
        Assert.AreEqual(Errno.ENOENT, Assert.ThrowsExactly<ErrnoException>(() => vfs.Resolve(context, dir + "/gone", followFinal: true)).Errno, "the cached name expired");
    }

    [TestMethod]
    public void TheVfsKeepsADentryWhoseNameStillLeadsToTheSameFile()
    {
        Scratch("same");
        var (vfs, context) = Mounted(out _);
        string path = "/" + TestContext.TestName + "/same";
        var first = vfs.Resolve(context, path, followFinal: true).Path.Dentry;
        Thread.Sleep(Timeout + TimeSpan.FromMilliseconds(100));
        var second = vfs.Resolve(context, path, followFinal: true).Path.Dentry;
        Assert.AreSame(first, second);
        Assert.IsFalse(second.Deleted);
    }

    private static (VirtualFileSystem Vfs, PathContext Context) Mounted(out GoferFileSystem fs)
    {
        fs = new GoferFileSystem(gofer, 0, memory, readOnly: false, new GoferMountOptions { AttributeTimeout = Timeout });
        var vfs = new VirtualFileSystem();
        vfs.MountRoot(fs, "gofer", readOnly: false);
        var credentials = Credentials.ForUser(0, 0);
        return (vfs, new PathContext(credentials, vfs.RootPath, vfs.RootPath, null));
    }

    private static string ReadAll(IInode inode)
    {
        var file = inode.Open(OpenFlags.ReadOnly);
        var buffer = new byte[256];
        long offset = 0;
        long n = file.Read(buffer, ref offset);
        return System.Text.Encoding.UTF8.GetString(buffer, 0, (int)n);
    }
}
