using System.Text;
using AppKernel.Sentry.Fs.Overlay;
using AppKernel.Sentry.Fs.Tmpfs;
using AppKernel.Sentry.Memory;
using AppKernel.Vfs;
using static AppKernel.Sentry.Tests.Fs.FsTestHelpers;
using FileMode = AppKernel.Vfs.FileMode;

namespace AppKernel.Sentry.Tests.Fs;

[TestClass]
public sealed class OverlayTests
{
    private static readonly Timespec Old = new(1_000_000, 500);

    private MemoryFile memory = null!;
    private TmpfsFileSystem lower = null!;
    private TmpfsFileSystem upper = null!;
    private OverlayFileSystem overlay = null!;

    [TestInitialize]
    public void Setup()
    {
        memory = new MemoryFile(maxSize: 1L << 30);
        lower = new TmpfsFileSystem(memory, TmpfsOptions.Parse("mode=755"));
        var etc = lower.Root.CreateDirectory("etc", Dir(), Root);
        var passwd = File(etc, "passwd", "root:x:0:0");
        passwd.SetAttributes(new AttributeUpdate(AttributeMask.Mode | AttributeMask.Uid | AttributeMask.Gid | AttributeMask.AccessTime | AttributeMask.ModifyTime,
            (FileMode)0x1A0, 1000, 100, 0, Old, Old)); // 0640
        passwd.SetExtendedAttribute("user.origin", "lower"u8, 0);
        File(etc, "hosts", "127.0.0.1 localhost");
        var lib = lower.Root.CreateDirectory("usr", Dir(), Root).CreateDirectory("lib", Dir(), Root);
        File(lib, "a", "A");
        File(lib, "b", "B");
        var sub = lower.Root.CreateDirectory("dir", Dir(), Root).CreateDirectory("sub", Dir(), Root);
        File(sub, "file", "deep");
        lower.Root.CreateDirectory("empty", Dir(), Root);
        lower.Root.CreateSymlink("link", "/etc/passwd", Root);
        var sparse = File(lower.Root, "sparse");
        WriteAll(sparse, "end", 1 << 20);
        etc.SetAttributes(new AttributeUpdate(AttributeMask.AccessTime | AttributeMask.ModifyTime, AccessTime: Old, ModifyTime: Old));

        upper = new TmpfsFileSystem(memory);
        overlay = new OverlayFileSystem(lower, upper);
    }

    [TestCleanup]
    public void Cleanup() => memory.Dispose();

    private IInode Walk(string path)
    {
        IInode node = overlay.Root;
        foreach (string part in path.Split('/', StringSplitOptions.RemoveEmptyEntries))
        {
            node = node.Lookup(part) ?? throw new AssertFailedException($"{path}: {part} missing");
        }

        return node;
    }

    /// <summary>A new overlay over the same layers: sees only what the upper layer recorded, nothing cached.</summary>
    private IInode Remounted(string path) => Find(new OverlayFileSystem(lower, upper).Root, path) ?? throw new AssertFailedException($"{path} missing");

    private static IInode? Find(IInode root, string path)
    {
        IInode? node = root;
        foreach (string part in path.Split('/', StringSplitOptions.RemoveEmptyEntries))
        {
            node = node?.Lookup(part);
        }

        return node;
    }

    [TestMethod]
    public void LookupMergesUpperOverLower()
    {
        Assert.AreEqual("root:x:0:0", ReadAll(Walk("/etc/passwd")));
        Assert.AreEqual("/etc/passwd", Walk("/link").ReadLink());
        File(Walk("/etc"), "new", "fresh");
        CollectionAssert.AreEqual(new[] { "hosts", "new", "passwd" }, SortedNames(Walk("/etc")));
        Assert.IsNull(Find(lower.Root, "/etc/new"), "the lower layer is never written");
        Assert.AreEqual("fresh", ReadAll(Find(upper.Root, "/etc/new")!));
        Assert.AreEqual("overlay", overlay.TypeName);
        Assert.AreEqual(OverlayFileSystem.Magic, overlay.GetStatistics().Type);
        Assert.AreEqual(lower.Root.GetAttributes().Mode, overlay.Root.GetAttributes().Mode, "the root looks like the lower root");
    }

    [TestMethod]
    public void CopyUpOnWriteKeepsContentModeOwnerTimesXattrsAndIno()
    {
        var passwd = Walk("/etc/passwd");
        var before = passwd.GetAttributes();
        Assert.AreEqual(Errno.None, ErrnoOf(() => passwd.Open(OpenFlags.ReadOnly).Release()));
        Assert.IsNull(Find(upper.Root, "/etc"), "reading copies nothing up");

        var ops = passwd.Open(OpenFlags.ReadWrite);
        Assert.AreSame(passwd, ops.Inode);
        var copy = Find(upper.Root, "/etc/passwd");
        Assert.IsNotNull(copy, "open for write copied the file and its parent up");
        var copied = copy.GetAttributes();
        Assert.AreEqual(before.Mode, copied.Mode);
        Assert.AreEqual(1000, copied.Uid);
        Assert.AreEqual(100, copied.Gid);
        Assert.AreEqual(Old, copied.ModifyTime);
        Assert.AreEqual(Old, copied.AccessTime);
        Assert.AreEqual(Old, Find(upper.Root, "/etc")!.GetAttributes().ModifyTime, "the parent's times are kept");
        var value = new byte[5];
        Assert.AreEqual(5, copy.GetExtendedAttribute("user.origin", value));
        Assert.AreEqual("lower", Encoding.UTF8.GetString(value));
        Assert.AreEqual("root:x:0:0", ReadAll(copy));

        long offset = 10;
        ops.Write("\nuser:x:1000:1000"u8, ref offset, append: false);
        ops.Release();
        var after = passwd.GetAttributes();
        Assert.AreEqual(before.Ino, after.Ino, "st_ino survives copy-up");
        Assert.AreEqual(before.Mode, after.Mode);
        Assert.AreEqual("root:x:0:0\nuser:x:1000:1000", ReadAll(passwd));
        Assert.AreEqual("root:x:0:0", ReadAll(Find(lower.Root, "/etc/passwd")!));

        // A new lookup (and the listing) still gives the same number.
        Assert.AreEqual(before.Ino, Walk("/etc").ReadDirectory(2).Single(e => e.Name == "passwd").Ino);
    }

    [TestMethod]
    public void ChmodAndTruncateCopyUp()
    {
        var hosts = Walk("/etc/hosts");
        var lowerTimes = Find(lower.Root, "/etc/hosts")!.GetAttributes();
        hosts.SetAttributes(new AttributeUpdate(AttributeMask.Mode, Mode: (FileMode)0x180));
        var attributes = hosts.GetAttributes();
        Assert.AreEqual(FileMode.Regular | (FileMode)0x180, attributes.Mode);
        Assert.AreEqual(lowerTimes.ModifyTime, attributes.ModifyTime, "chmod keeps mtime");
        Assert.AreEqual("127.0.0.1 localhost", ReadAll(hosts));
        Assert.AreEqual(FileMode.Regular | (FileMode)0x1A4, Find(lower.Root, "/etc/hosts")!.GetAttributes().Mode);

        var lib = Walk("/usr/lib/a");
        lib.SetAttributes(new AttributeUpdate(AttributeMask.Size, Size: 0));
        Assert.AreEqual(0, lib.GetAttributes().Size);
        Assert.AreEqual("", ReadAll(lib));
        Assert.AreEqual("A", ReadAll(Find(lower.Root, "/usr/lib/a")!));
    }

    [TestMethod]
    public void CopyUpKeepsSparseness()
    {
        var sparse = Walk("/sparse");
        sparse.Open(OpenFlags.WriteOnly).Release();
        var copy = Find(upper.Root, "/sparse")!.GetAttributes();
        Assert.AreEqual((1 << 20) + 3, copy.Size);
        Assert.AreEqual(8, copy.Blocks, "only the page with data was copied");
        var ops = sparse.Open(OpenFlags.ReadOnly);
        var buffer = new byte[3];
        long offset = 1 << 20;
        ops.Read(buffer, ref offset);
        Assert.AreEqual("end", Encoding.UTF8.GetString(buffer));
        ops.Release();
    }

    [TestMethod]
    public void ReadOnlyDescriptionFollowsTheCopyUp()
    {
        var passwd = Walk("/etc/passwd");
        var reader = passwd.Open(OpenFlags.ReadOnly);
        var buffer = new byte[4];
        long readOffset = 0;
        reader.Read(buffer, ref readOffset);
        Assert.AreEqual("root", Encoding.UTF8.GetString(buffer));

        WriteAll(passwd, "ROOT");
        readOffset = 0;
        reader.Read(buffer, ref readOffset);
        Assert.AreEqual("ROOT", Encoding.UTF8.GetString(buffer), "reads see the upper copy");
        reader.Release();
    }

    [TestMethod]
    public void UnlinkOfALowerFileLeavesAHiddenWhiteout()
    {
        var etc = Walk("/etc");
        var open = etc.Lookup("hosts")!.Open(OpenFlags.ReadOnly);
        etc.Unlink("hosts");
        Assert.IsNull(etc.Lookup("hosts"));
        CollectionAssert.AreEqual(new[] { "passwd" }, Names(etc));
        var whiteout = Find(upper.Root, "/etc/hosts")!.GetAttributes();
        Assert.AreEqual(FileMode.CharDevice, whiteout.Mode.Type());
        Assert.AreEqual(0ul, whiteout.Rdev);
        Assert.AreEqual("127.0.0.1 localhost", ReadAll(open), "still readable while open");
        Assert.AreEqual(0u, open.Inode!.GetAttributes().Links);
        open.Release();
        Assert.AreEqual(Errno.ENOENT, ErrnoOf(() => etc.Unlink("hosts")));

        File(etc, "hosts", "new hosts");
        Assert.AreEqual("new hosts", ReadAll(etc.Lookup("hosts")!));
        CollectionAssert.AreEqual(new[] { "hosts", "passwd" }, SortedNames(etc));
        CollectionAssert.AreEqual(new[] { "hosts", "passwd" }, SortedNames(Remounted("/etc")));
        Assert.AreEqual("new hosts", ReadAll(Remounted("/etc/hosts")));
        Assert.AreEqual(Errno.EPERM, ErrnoOf(() => etc.CreateNode("fake", FileMode.CharDevice, 0, Root)), "programs cannot make whiteouts");
    }

    [TestMethod]
    public void DirectoryRecreatedOverARemovedOneIsOpaque()
    {
        var dir = Walk("/dir");
        Assert.AreEqual(Errno.ENOTEMPTY, ErrnoOf(() => dir.RemoveDirectory("sub")));
        Assert.AreEqual(Errno.EISDIR, ErrnoOf(() => dir.Unlink("sub")));
        Assert.AreEqual(Errno.ENOTDIR, ErrnoOf(() => Walk("/dir/sub").RemoveDirectory("file")));
        Walk("/dir/sub").Unlink("file");
        dir.RemoveDirectory("sub");
        Assert.IsNull(dir.Lookup("sub"));
        Assert.AreEqual(0, Names(dir).Count);

        var again = dir.CreateDirectory("sub", Dir(), Root);
        Assert.AreEqual(0, Names(again).Count, "the old lower entries stay hidden");
        Assert.IsNull(again.Lookup("file"));
        Assert.IsNull(Walk("/dir/sub").Lookup("file"));
        var upperSub = Find(upper.Root, "/dir/sub")!;
        var value = new byte[1];
        Assert.AreEqual(1, upperSub.GetExtendedAttribute("trusted.overlay.opaque", value));
        Assert.AreEqual((byte)'y', value[0]);
        Assert.IsFalse(again.ListExtendedAttributes().Any(n => n.StartsWith("trusted.overlay.")), "private attributes are hidden");
        Assert.AreEqual(Errno.EOPNOTSUPP, ErrnoOf(() => again.GetExtendedAttribute("trusted.overlay.opaque", value)));
        Assert.AreEqual(Errno.EOPNOTSUPP, ErrnoOf(() => again.SetExtendedAttribute("trusted.overlay.opaque", "n"u8, 0)));
        Assert.AreEqual(2u, again.GetAttributes().Links, "not merged: its own link count");
        File(again, "mine");
        CollectionAssert.AreEqual(new[] { "mine" }, Names(Walk("/dir/sub")));
        CollectionAssert.AreEqual(new[] { "mine" }, Names(Remounted("/dir/sub")));
    }

    [TestMethod]
    public void RemovingALowerDirectoryOfWhiteoutsWorks()
    {
        var lib = Walk("/usr/lib");
        lib.Unlink("a");
        lib.Unlink("b");
        Assert.AreEqual(0, Names(lib).Count);
        Walk("/usr").RemoveDirectory("lib");
        Assert.IsNull(Walk("/usr").Lookup("lib"));
        Assert.AreEqual(0, Names(Walk("/usr")).Count);
        Assert.AreEqual(0, Names(lib).Count, "an open handle on the removed directory lists nothing");
        Assert.AreEqual(Errno.ENOENT, ErrnoOf(() => File(lib, "x")));
    }

    [TestMethod]
    public void MergedListingHasEachNameOnce()
    {
        var lib = Walk("/usr/lib");
        File(lib, "c", "C");
        WriteAll(lib.Lookup("a")!, "AA");
        var entries = lib.ReadDirectory(2).ToList();
        CollectionAssert.AreEquivalent(new[] { "a", "b", "c" }, entries.Select(e => e.Name).ToArray());
        CollectionAssert.AreEquivalent(new[] { "a", "b", "c" }, Names(Remounted("/usr/lib")));
        Assert.AreEqual("AA", ReadAll(Remounted("/usr/lib/a")));
        Assert.AreEqual(lib.Lookup("a")!.GetAttributes().Ino, entries.Single(e => e.Name == "a").Ino);
        Assert.AreEqual(lib.Lookup("c")!.GetAttributes().Ino, entries.Single(e => e.Name == "c").Ino);
        Assert.AreEqual(1u, lib.GetAttributes().Links, "merged directories report one link");
        Assert.IsTrue(entries.All(e => e.NextOffset >= 2));
    }

    [TestMethod]
    public void ListingCookiesStayValidAcrossCopyUpAndChanges()
    {
        var root = lower.Root.CreateDirectory("many", Dir(), Root);
        for (int i = 0; i < 40; i++)
        {
            File(root, $"l{i:D2}", "x");
        }

        var many = Walk("/many");
        for (int i = 0; i < 10; i++)
        {
            File(many, $"u{i}", "y");
        }

        var first = many.ReadDirectory(2).Take(15).ToList();
        var seen = first.Select(e => e.Name).ToList();

        // Copy up everything, remove a few names not yet listed, add some.
        foreach (string name in Names(many).Where(n => n.StartsWith('l')))
        {
            many.Lookup(name)!.SetAttributes(new AttributeUpdate(AttributeMask.Mode, Mode: (FileMode)0x180));
        }

        var notYet = Names(many).Except(seen).ToList();
        many.Unlink(notYet[0]);
        many.Unlink(notYet[^1]);
        File(many, "added", "z");

        var rest = many.ReadDirectory(first[^1].NextOffset).Select(e => e.Name).ToList();
        seen.AddRange(rest);
        Assert.AreEqual(seen.Count, seen.Distinct().Count(), "nothing repeated");
        var expected = Enumerable.Range(0, 40).Select(i => $"l{i:D2}").Concat(Enumerable.Range(0, 10).Select(i => $"u{i}"))
            .Except([notYet[0], notYet[^1]]).ToList();
        foreach (string name in expected)
        {
            CollectionAssert.Contains(seen, name, "nothing skipped");
        }
    }

    [TestMethod]
    public void RenamingALowerDirectoryGivesExdev()
    {
        Assert.AreEqual(Errno.EXDEV, ErrnoOf(() => overlay.Root.Rename("dir", overlay.Root, "moved", RenameFlags.None)));
        Walk("/etc").CreateNode("x", Reg(), 0, Root); // copies /etc up: a merged directory is no better
        Assert.AreEqual(Errno.EXDEV, ErrnoOf(() => overlay.Root.Rename("etc", overlay.Root, "etc2", RenameFlags.None)));
        Assert.AreEqual(Errno.EXDEV, ErrnoOf(() => overlay.Root.Rename("etc", new TmpfsFileSystem(memory).Root, "etc2", RenameFlags.None)));
        var mine = overlay.Root.CreateDirectory("mine", Dir(), Root);
        File(mine, "f", "data");
        overlay.Root.Rename("mine", overlay.Root, "yours", RenameFlags.None);
        Assert.AreEqual("data", ReadAll(Walk("/yours/f")));
        Assert.IsNull(overlay.Root.Lookup("mine"));
    }

    [TestMethod]
    public void RenamingALowerFileCopiesItUpAndHidesTheOldName()
    {
        var passwd = Walk("/etc/passwd");
        ulong ino = passwd.GetAttributes().Ino;
        Walk("/etc").Rename("passwd", Walk("/usr/lib"), "pw", RenameFlags.None);
        Assert.IsNull(Walk("/etc").Lookup("passwd"));
        CollectionAssert.AreEqual(new[] { "hosts" }, Names(Walk("/etc")));
        var moved = Walk("/usr/lib/pw");
        Assert.AreSame(passwd, moved);
        Assert.AreEqual(ino, moved.GetAttributes().Ino);
        Assert.AreEqual("root:x:0:0", ReadAll(moved));
        CollectionAssert.AreEquivalent(new[] { "a", "b", "pw" }, Names(Walk("/usr/lib")));
        CollectionAssert.AreEqual(new[] { "hosts" }, Names(Remounted("/etc")));
        Assert.AreEqual("root:x:0:0", ReadAll(Remounted("/usr/lib/pw")));

        // Replace a lower file; NoReplace and Exchange.
        Walk("/usr/lib").Rename("pw", Walk("/usr/lib"), "a", RenameFlags.None);
        Assert.AreEqual("root:x:0:0", ReadAll(Walk("/usr/lib/a")));
        CollectionAssert.AreEquivalent(new[] { "a", "b" }, Names(Walk("/usr/lib")));
        Assert.AreEqual(Errno.EEXIST, ErrnoOf(() => Walk("/usr/lib").Rename("a", Walk("/usr/lib"), "b", RenameFlags.NoReplace)));
        Walk("/usr/lib").Rename("a", Walk("/etc"), "hosts", RenameFlags.Exchange);
        Assert.AreEqual("root:x:0:0", ReadAll(Walk("/etc/hosts")));
        Assert.AreEqual("127.0.0.1 localhost", ReadAll(Walk("/usr/lib/a")));
        overlay.Root.CreateDirectory("d", Dir(), Root);
        Assert.AreEqual(Errno.ENOTDIR, ErrnoOf(() => overlay.Root.Rename("d", overlay.Root, "link", RenameFlags.None)));
        Assert.AreEqual(Errno.EISDIR, ErrnoOf(() => overlay.Root.Rename("link", overlay.Root, "empty", RenameFlags.None)));
        Assert.AreEqual(Errno.ENOTEMPTY, ErrnoOf(() => overlay.Root.Rename("d", overlay.Root, "etc", RenameFlags.None)));
    }

    [TestMethod]
    public void DirectoryMovedOverAnEmptiedLowerDirectoryIsOpaque()
    {
        Walk("/usr/lib").Unlink("a");
        Walk("/usr/lib").Unlink("b");
        var mine = overlay.Root.CreateDirectory("mine", Dir(), Root);
        File(mine, "y", "why");
        overlay.Root.Rename("mine", Walk("/usr"), "lib", RenameFlags.None);
        CollectionAssert.AreEqual(new[] { "y" }, Names(Walk("/usr/lib")), "the lower a and b must not come back");
        CollectionAssert.AreEqual(new[] { "y" }, Names(Remounted("/usr/lib")), "the upper layer records the opacity");
        Assert.IsNull(Walk("/usr/lib").Lookup("a"));
        Assert.AreEqual("why", ReadAll(Walk("/usr/lib/y")));
    }

    [TestMethod]
    public void HardLinkOfALowerFile()
    {
        var hosts = Walk("/etc/hosts");
        overlay.Root.Link("hosts2", hosts);
        Assert.AreEqual(2u, hosts.GetAttributes().Links);
        Assert.AreEqual(hosts.GetAttributes().Ino, Walk("/hosts2").GetAttributes().Ino);
        WriteAll(Walk("/hosts2"), "changed");
        Assert.AreEqual("changed.1 localhost", ReadAll(hosts));
        Assert.AreEqual(Errno.EPERM, ErrnoOf(() => overlay.Root.Link("d", Walk("/etc"))));
        Assert.AreEqual(Errno.EEXIST, ErrnoOf(() => overlay.Root.Link("etc", hosts)));
    }

    [TestMethod]
    public void InodeNumbersAreUniqueAndStable()
    {
        var seen = new Dictionary<ulong, string>();
        void Collect(IInode directory, string path)
        {
            foreach (var entry in directory.ReadDirectory(2))
            {
                Assert.IsTrue(seen.TryAdd(entry.Ino, path + entry.Name), $"{path}{entry.Name} shares an inode number with {seen.GetValueOrDefault(entry.Ino)}");
                var child = directory.Lookup(entry.Name)!;
                Assert.AreEqual(entry.Ino, child.GetAttributes().Ino);
                if (entry.Type == FileMode.Directory)
                {
                    Collect(child, path + entry.Name + "/");
                }
            }
        }

        File(Walk("/etc"), "upperonly");
        WriteAll(Walk("/usr/lib/a"), "copied");
        Collect(overlay.Root, "/");
        Assert.IsFalse(seen.ContainsKey(overlay.Root.GetAttributes().Ino));
    }

    [TestMethod]
    public void XattrsCopyUpAndRemove()
    {
        var passwd = Walk("/etc/passwd");
        CollectionAssert.AreEqual(new[] { "user.origin" }, passwd.ListExtendedAttributes().ToArray());
        Assert.AreEqual(Errno.ENODATA, ErrnoOf(() => passwd.RemoveExtendedAttribute("user.none")));
        Assert.IsNull(Find(upper.Root, "/etc/passwd"), "a failed removal copies nothing up");
        passwd.RemoveExtendedAttribute("user.origin");
        Assert.AreEqual(0, passwd.ListExtendedAttributes().Count);
        Assert.AreEqual(1, Find(lower.Root, "/etc/passwd")!.ListExtendedAttributes().Count);
        passwd.SetExtendedAttribute("user.new", "1"u8, 1);
        Assert.AreEqual(1, passwd.GetExtendedAttribute("user.new", []));
    }

    [TestMethod]
    public void DescriptionsReportTheOverlayInode()
    {
        var passwd = Walk("/etc/passwd");
        var reader = passwd.Open(OpenFlags.ReadOnly);
        Assert.AreSame(passwd, reader.Inode);
        Assert.IsNotNull(reader.Mappable);
        reader.Release();
        var directory = Walk("/usr").Open(OpenFlags.ReadOnly | OpenFlags.Directory);
        Assert.AreSame(Walk("/usr"), directory.Inode);
        directory.Release();
    }

    [TestMethod]
    public void SymlinksAndSpecialNodesCopyUp()
    {
        var link = Walk("/link");
        link.SetAttributes(new AttributeUpdate(AttributeMask.Uid, Uid: 5));
        Assert.AreEqual("/etc/passwd", Find(upper.Root, "/link")!.ReadLink());
        Assert.AreEqual(5, link.GetAttributes().Uid);

        lower.Root.CreateNode("fifo", FileMode.Fifo | (FileMode)0x1B6, 0, Root);
        var fifo = Walk("/fifo");
        fifo.SetAttributes(new AttributeUpdate(AttributeMask.Mode, Mode: (FileMode)0x180));
        Assert.AreEqual(FileMode.Fifo | (FileMode)0x180, Find(upper.Root, "/fifo")!.GetAttributes().Mode);
    }
}
