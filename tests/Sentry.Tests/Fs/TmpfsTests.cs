using System.Text;
using AppKernel.Sentry.Fs.Tmpfs;
using AppKernel.Sentry.Memory;
using AppKernel.Vfs;
using static AppKernel.Sentry.Tests.Fs.FsTestHelpers;
using FileMode = AppKernel.Vfs.FileMode;

namespace AppKernel.Sentry.Tests.Fs;

[TestClass]
public sealed class TmpfsTests
{
    private MemoryFile memory = null!;

    [TestInitialize]
    public void Setup() => memory = new MemoryFile(maxSize: 1L << 30);

    [TestCleanup]
    public void Cleanup() => memory.Dispose();

    private TmpfsFileSystem NewFs(string? options = null) => new(memory, TmpfsOptions.Parse(options));

    [TestMethod]
    public void SparseFileHolesReadAsZeroAndTakeNoPages()
    {
        var fs = NewFs();
        var file = File(fs.Root, "sparse");
        var ops = file.Open(OpenFlags.ReadWrite);
        long offset = 1 << 20;
        Assert.AreEqual(1, ops.Write([0x5A], ref offset, append: false));
        var attributes = file.GetAttributes();
        Assert.AreEqual((1 << 20) + 1, attributes.Size);
        Assert.AreEqual(8, attributes.Blocks, "one page of 8 sectors");
        Assert.AreEqual(4096, memory.AllocatedBytes);

        var buffer = new byte[8192];
        buffer.AsSpan().Fill(0xFF);
        long at = 4096;
        Assert.AreEqual(8192, ops.Read(buffer, ref at));
        Assert.IsTrue(buffer.All(b => b == 0));
        Assert.AreEqual(4096 + 8192, at);
        at = 1 << 20;
        Assert.AreEqual(1, ops.Read(buffer, ref at));
        Assert.AreEqual(0x5A, buffer[0]);
        Assert.AreEqual(0, ops.Read(buffer, ref at), "EOF");
        ops.Release();
    }

    [TestMethod]
    public void TruncateDownFreesPagesAndTruncateUpReadsZeros()
    {
        var fs = NewFs();
        var file = File(fs.Root, "f");
        var ops = file.Open(OpenFlags.ReadWrite);
        var data = new byte[10000];
        data.AsSpan().Fill(0xAB);
        long offset = 0;
        ops.Write(data, ref offset, append: false);
        Assert.AreEqual(3 * 8, file.GetAttributes().Blocks);

        file.SetAttributes(new AttributeUpdate(AttributeMask.Size, Size: 5000));
        Assert.AreEqual(5000, file.GetAttributes().Size);
        Assert.AreEqual(2 * 8, file.GetAttributes().Blocks);
        Assert.AreEqual(2 * 4096, memory.AllocatedBytes);
        Span<long> page = stackalloc long[1];
        ops.Mappable!.GetPages(4096, page);
        Assert.IsTrue(memory.GetSpan(page[0] + 5000 - 4096, 4096 - (5000 - 4096)).ToArray().All(b => b == 0), "the tail of the last page is zeroed");
        Assert.IsTrue(memory.GetSpan(page[0], 5000 - 4096).ToArray().All(b => b == 0xAB));
        memory.DecRef(page[0], 4096);

        file.SetAttributes(new AttributeUpdate(AttributeMask.Size, Size: 10000));
        Assert.AreEqual(10000, file.GetAttributes().Size);
        Assert.AreEqual(2 * 8, file.GetAttributes().Blocks, "growing allocates nothing");
        var back = new byte[10000];
        offset = 0;
        Assert.AreEqual(10000, ops.Read(back, ref offset));
        Assert.IsTrue(back.AsSpan(0, 5000).ToArray().All(b => b == 0xAB));
        Assert.IsTrue(back.AsSpan(5000).ToArray().All(b => b == 0), "bytes past the old end read as zero");

        file.SetAttributes(new AttributeUpdate(AttributeMask.Size, Size: 0));
        Assert.AreEqual(0, file.GetAttributes().Blocks);
        Assert.AreEqual(0, memory.AllocatedBytes);
        ops.Release();
    }

    [TestMethod]
    public void GrowingZeroesBytesAMappingWrotePastTheEnd()
    {
        var fs = NewFs();
        var file = File(fs.Root, "f", "abc");
        var mappable = file.Open(OpenFlags.ReadWrite).Mappable!;
        Span<long> pages = stackalloc long[1];
        mappable.GetPages(0, pages);
        memory.GetSpan(pages[0] + 3, 10).Fill((byte)'x');
        file.SetAttributes(new AttributeUpdate(AttributeMask.Size, Size: 13));
        Assert.AreEqual("abc" + new string('\0', 10), ReadAll(file));
        memory.DecRef(pages[0], 4096);
    }

    [TestMethod]
    public void SizeLimitStopsWritesWithEnospc()
    {
        var fs = NewFs("size=8k");
        var file = File(fs.Root, "f");
        var ops = file.Open(OpenFlags.WriteOnly);
        long offset = 0;
        Assert.AreEqual(8192, ops.Write(new byte[10000], ref offset, append: false), "short write at the limit");
        Assert.AreEqual(Errno.ENOSPC, ErrnoOf(() =>
        {
            long at = 8192;
            ops.Write(new byte[1], ref at, append: false);
        }));
        Assert.AreEqual(0, fs.GetStatistics().FreeBlocks);
        Assert.AreEqual(2, fs.GetStatistics().Blocks);

        // Rewriting pages already held needs no room.
        offset = 100;
        Assert.AreEqual(50, ops.Write(new byte[50], ref offset, append: false));
        file.SetAttributes(new AttributeUpdate(AttributeMask.Size, Size: 4096));
        Assert.AreEqual(1, fs.GetStatistics().FreeBlocks);
        ops.Release();
    }

    [TestMethod]
    public void WritingPastTheMaximumSizeGivesEfbig()
    {
        var fs = NewFs();
        var ops = File(fs.Root, "f").Open(OpenFlags.WriteOnly);
        long offset = TmpfsFileSystem.MaxFileSize;
        Assert.AreEqual(Errno.EFBIG, ErrnoOf(() => ops.Write([1], ref offset, append: false)));
        offset = TmpfsFileSystem.MaxFileSize - 10;
        Assert.AreEqual(10, ops.Write(new byte[100], ref offset, append: false));
        Assert.AreEqual(TmpfsFileSystem.MaxFileSize, offset);
        ops.Release();
    }

    [TestMethod]
    public void InodeLimitGivesEnospc()
    {
        var fs = NewFs("nr_inodes=3");
        File(fs.Root, "a");
        fs.Root.CreateDirectory("b", Dir(), Root);
        Assert.AreEqual(Errno.ENOSPC, ErrnoOf(() => File(fs.Root, "c")));
        fs.Root.Unlink("a");
        File(fs.Root, "c");
        Assert.AreEqual(0, fs.GetStatistics().FreeFiles);
    }

    [TestMethod]
    public void OptionsParse()
    {
        var options = TmpfsOptions.Parse("size=1m,nr_inodes=10k,mode=700,uid=1000,gid=100");
        Assert.AreEqual(1 << 20, options.SizeBytes);
        Assert.AreEqual(10 << 10, options.MaxInodes);
        Assert.AreEqual((FileMode)0x1C0, options.RootMode);
        Assert.AreEqual(1000, options.RootUid);
        Assert.AreEqual(100, options.RootGid);
        Assert.AreEqual(1L << 30, TmpfsOptions.Parse("size=50%", totalMemoryBytes: 2L << 30).SizeBytes);
        Assert.AreEqual(8192, TmpfsOptions.Parse("size=5000").SizeBytes, "rounded up to pages");
        Assert.AreEqual(Errno.EINVAL, ErrnoOf(() => TmpfsOptions.Parse("bogus=1")));
        Assert.AreEqual(Errno.EINVAL, ErrnoOf(() => TmpfsOptions.Parse("mode=9")));
        Assert.AreEqual(Errno.EINVAL, ErrnoOf(() => TmpfsOptions.Parse("size=12q")));

        var fs = new TmpfsFileSystem(memory, TmpfsOptions.Parse("mode=1700,uid=5,gid=6"));
        var root = fs.Root.GetAttributes();
        Assert.AreEqual(FileMode.Directory | (FileMode)0x3C0, root.Mode);
        Assert.AreEqual(5, root.Uid);
        Assert.AreEqual(6, root.Gid);
        Assert.AreEqual(TmpfsFileSystem.Magic, fs.GetStatistics().Type);
        Assert.AreEqual(0x01021994, fs.GetStatistics().Type);
        Assert.AreEqual("tmpfs", new TmpfsFileSystemType().Name);
    }

    [TestMethod]
    public void DefaultRootIsWorldWritableSticky() =>
        Assert.AreEqual(FileMode.Directory | (FileMode)0x3FF, NewFs().Root.GetAttributes().Mode);

    [TestMethod]
    public void ListingCookiesSurviveChangesDuringTheListing()
    {
        var fs = NewFs();
        var names = Enumerable.Range(0, 100).Select(i => $"f{i:D3}").ToList();
        foreach (string name in names)
        {
            File(fs.Root, name);
        }

        var firstPart = fs.Root.ReadDirectory(2).Take(30).ToList();
        Assert.AreEqual(30, firstPart.Select(e => e.Name).Distinct().Count());
        Assert.IsTrue(firstPart.All(e => e.NextOffset >= 2));

        // Remove some listed and some not yet listed entries, add new ones, then resume.
        var listed = firstPart.Select(e => e.Name).ToHashSet();
        var unlisted = names.Where(n => !listed.Contains(n)).ToList();
        foreach (string name in listed.Take(10).Concat(unlisted.Take(10)))
        {
            fs.Root.Unlink(name);
        }

        for (int i = 0; i < 50; i++)
        {
            File(fs.Root, $"new{i}");
        }

        var rest = fs.Root.ReadDirectory(firstPart[^1].NextOffset).Select(e => e.Name).ToList();
        Assert.AreEqual(rest.Count, rest.Distinct().Count(), "no repeats");
        Assert.IsFalse(rest.Any(listed.Contains), "nothing listed before comes again");
        foreach (string name in unlisted.Skip(10))
        {
            CollectionAssert.Contains(rest, name, "surviving entries are not skipped");
        }

        foreach (string name in unlisted.Take(10))
        {
            CollectionAssert.DoesNotContain(rest, name);
        }

        // Many removals compact the list; old cookies still resume at the right place.
        var all = fs.Root.ReadDirectory(2).ToList();
        var resumeAfter = all[5];
        foreach (var entry in all.Take(5).Concat(all.Skip(6).Take(60)))
        {
            fs.Root.Unlink(entry.Name);
        }

        var tail = fs.Root.ReadDirectory(resumeAfter.NextOffset).Select(e => e.Name).ToList();
        CollectionAssert.AreEqual(all.Skip(66).Select(e => e.Name).ToList(), tail);
    }

    [TestMethod]
    public void ListingStartsAfterDotEntriesAndReportsTypes()
    {
        var fs = NewFs();
        var file = File(fs.Root, "file");
        var dir = fs.Root.CreateDirectory("dir", Dir(), Root);
        fs.Root.CreateSymlink("link", "file", Root);
        var entries = fs.Root.ReadDirectory(0).ToList();
        CollectionAssert.AreEqual(new[] { "file", "dir", "link" }, entries.Select(e => e.Name).ToArray());
        Assert.AreEqual(FileMode.Regular, entries[0].Type);
        Assert.AreEqual(FileMode.Directory, entries[1].Type);
        Assert.AreEqual(FileMode.Symlink, entries[2].Type);
        Assert.AreEqual(file.GetAttributes().Ino, entries[0].Ino);
        Assert.AreEqual(dir.GetAttributes().Ino, entries[1].Ino);
        Assert.AreEqual(0, fs.Root.ReadDirectory(entries[2].NextOffset).Count());
        Assert.AreEqual(20 * 5, fs.Root.GetAttributes().Size);
    }

    [TestMethod]
    public void InodeNumbersAreUnique()
    {
        var fs = NewFs();
        var inos = new HashSet<ulong> { fs.Root.GetAttributes().Ino };
        for (int i = 0; i < 20; i++)
        {
            Assert.IsTrue(inos.Add(File(fs.Root, $"f{i}").GetAttributes().Ino));
            Assert.IsTrue(inos.Add(fs.Root.CreateDirectory($"d{i}", Dir(), Root).GetAttributes().Ino));
        }
    }

    [TestMethod]
    public void RenameReplacesFilesAndChecksTypes()
    {
        var fs = NewFs();
        var a = File(fs.Root, "a", "A");
        var b = File(fs.Root, "b", "B");
        fs.Root.Rename("a", fs.Root, "b", RenameFlags.None);
        Assert.IsNull(fs.Root.Lookup("a"));
        Assert.AreSame(a, fs.Root.Lookup("b"));
        Assert.AreEqual(0u, b.GetAttributes().Links, "the replaced file lost its name");

        var full = fs.Root.CreateDirectory("full", Dir(), Root);
        File(full, "x");
        var empty = fs.Root.CreateDirectory("empty", Dir(), Root);
        var other = fs.Root.CreateDirectory("other", Dir(), Root);
        Assert.AreEqual(Errno.ENOTEMPTY, ErrnoOf(() => fs.Root.Rename("other", fs.Root, "full", RenameFlags.None)));
        Assert.AreEqual(Errno.ENOTDIR, ErrnoOf(() => fs.Root.Rename("other", fs.Root, "b", RenameFlags.None)));
        Assert.AreEqual(Errno.EISDIR, ErrnoOf(() => fs.Root.Rename("b", fs.Root, "empty", RenameFlags.None)));
        Assert.AreEqual(Errno.EEXIST, ErrnoOf(() => fs.Root.Rename("other", fs.Root, "empty", RenameFlags.NoReplace)));
        Assert.AreEqual(Errno.ENOENT, ErrnoOf(() => fs.Root.Rename("missing", fs.Root, "z", RenameFlags.None)));
        Assert.AreEqual(Errno.EINVAL, ErrnoOf(() => fs.Root.Rename("full", full, "sub", RenameFlags.None)), "into its own subtree");
        Assert.AreEqual(Errno.EINVAL, ErrnoOf(() => fs.Root.Rename("b", fs.Root, "c", RenameFlags.NoReplace | RenameFlags.Exchange)));

        uint rootLinks = fs.Root.GetAttributes().Links;
        fs.Root.Rename("other", fs.Root, "empty", RenameFlags.None);
        Assert.AreSame(other, fs.Root.Lookup("empty"));
        Assert.AreEqual(0u, empty.GetAttributes().Links);
        Assert.AreEqual(rootLinks - 1, fs.Root.GetAttributes().Links, "one subdirectory fewer");
        Assert.AreEqual(Errno.ENOENT, ErrnoOf(() => empty.CreateNode("x", Reg(), 0, Root)), "nothing is created in a removed directory");

        fs.Root.Rename("b", fs.Root, "moved", RenameFlags.NoReplace);
        Assert.AreEqual("A", ReadAll(fs.Root.Lookup("moved")!));
        Assert.AreEqual(Errno.EXDEV, ErrnoOf(() => fs.Root.Rename("moved", NewFs().Root, "x", RenameFlags.None)));
    }

    [TestMethod]
    public void RenameAcrossDirectoriesMovesLinkCounts()
    {
        var fs = NewFs();
        var from = fs.Root.CreateDirectory("from", Dir(), Root);
        var to = fs.Root.CreateDirectory("to", Dir(), Root);
        var sub = from.CreateDirectory("sub", Dir(), Root);
        File(sub, "inner", "data");
        Assert.AreEqual(3u, from.GetAttributes().Links);
        Assert.AreEqual(2u, to.GetAttributes().Links);
        from.Rename("sub", to, "sub2", RenameFlags.None);
        Assert.AreEqual(2u, from.GetAttributes().Links);
        Assert.AreEqual(3u, to.GetAttributes().Links);
        Assert.AreSame(sub, to.Lookup("sub2"));
        Assert.AreEqual("data", ReadAll(sub.Lookup("inner")!));
        Assert.AreEqual(Errno.EINVAL, ErrnoOf(() => fs.Root.Rename("to", sub, "loop", RenameFlags.None)));
    }

    [TestMethod]
    public void RenameExchangeSwapsEntries()
    {
        var fs = NewFs();
        var d1 = fs.Root.CreateDirectory("d1", Dir(), Root);
        var d2 = fs.Root.CreateDirectory("d2", Dir(), Root);
        var file = File(d1, "x", "file");
        var dir = d2.CreateDirectory("y", Dir(), Root);
        Assert.AreEqual(Errno.ENOENT, ErrnoOf(() => d1.Rename("x", d2, "none", RenameFlags.Exchange)));
        d1.Rename("x", d2, "y", RenameFlags.Exchange);
        Assert.AreSame(dir, d1.Lookup("x"));
        Assert.AreSame(file, d2.Lookup("y"));
        Assert.AreEqual(3u, d1.GetAttributes().Links, "d1 gained the subdirectory");
        Assert.AreEqual(2u, d2.GetAttributes().Links, "d2 lost it");
        Assert.AreEqual(1u, file.GetAttributes().Links);
    }

    [TestMethod]
    public void RenameBetweenHardLinksOfOneFileDoesNothing()
    {
        var fs = NewFs();
        var file = File(fs.Root, "a");
        fs.Root.Link("b", file);
        fs.Root.Rename("a", fs.Root, "b", RenameFlags.None);
        Assert.AreSame(file, fs.Root.Lookup("a"));
        Assert.AreSame(file, fs.Root.Lookup("b"));
        Assert.AreEqual(2u, file.GetAttributes().Links);
    }

    [TestMethod]
    public void RenameWithWhiteoutLeavesACharDevice00()
    {
        var fs = NewFs();
        File(fs.Root, "a");
        fs.Root.Rename("a", fs.Root, "b", RenameFlags.Whiteout);
        var whiteout = fs.Root.Lookup("a")!.GetAttributes();
        Assert.AreEqual(FileMode.CharDevice, whiteout.Mode.Type());
        Assert.AreEqual(0ul, whiteout.Rdev);
    }

    [TestMethod]
    public void LinkCounts()
    {
        var fs = NewFs();
        Assert.AreEqual(2u, fs.Root.GetAttributes().Links);
        var dir = fs.Root.CreateDirectory("d", Dir(), Root);
        Assert.AreEqual(2u, dir.GetAttributes().Links);
        Assert.AreEqual(3u, fs.Root.GetAttributes().Links);
        dir.CreateDirectory("e", Dir(), Root);
        Assert.AreEqual(3u, dir.GetAttributes().Links);
        File(dir, "f");
        Assert.AreEqual(3u, dir.GetAttributes().Links, "files do not count");

        var file = dir.Lookup("f")!;
        fs.Root.Link("g", file);
        Assert.AreEqual(2u, file.GetAttributes().Links);
        Assert.AreEqual(Errno.EEXIST, ErrnoOf(() => fs.Root.Link("g", file)));
        Assert.AreEqual(Errno.EPERM, ErrnoOf(() => fs.Root.Link("h", dir)));
        Assert.AreEqual(Errno.EXDEV, ErrnoOf(() => NewFs().Root.Link("h", file)));
        dir.Unlink("f");
        Assert.AreEqual(1u, file.GetAttributes().Links);
        dir.RemoveDirectory("e");
        Assert.AreEqual(2u, dir.GetAttributes().Links);
        fs.Root.Unlink("g");
        Assert.AreEqual(Errno.ENOENT, ErrnoOf(() => fs.Root.Link("again", file)), "an unlinked file cannot be linked");
    }

    [TestMethod]
    public void RemovalErrnos()
    {
        var fs = NewFs();
        var dir = fs.Root.CreateDirectory("d", Dir(), Root);
        File(dir, "f");
        Assert.AreEqual(Errno.EISDIR, ErrnoOf(() => fs.Root.Unlink("d")));
        Assert.AreEqual(Errno.ENOTDIR, ErrnoOf(() => dir.RemoveDirectory("f")));
        Assert.AreEqual(Errno.ENOTEMPTY, ErrnoOf(() => fs.Root.RemoveDirectory("d")));
        Assert.AreEqual(Errno.ENOENT, ErrnoOf(() => fs.Root.Unlink("nothing")));
        Assert.AreEqual(Errno.ENOENT, ErrnoOf(() => fs.Root.RemoveDirectory("nothing")));
        Assert.AreEqual(Errno.EEXIST, ErrnoOf(() => File(dir, "f")));
        Assert.AreEqual(Errno.EEXIST, ErrnoOf(() => fs.Root.CreateDirectory("d", Dir(), Root)));
        Assert.AreEqual(Errno.ENOTDIR, ErrnoOf(() => dir.Lookup("f")!.Lookup("x")));
        dir.Unlink("f");
        fs.Root.RemoveDirectory("d");
        Assert.IsNull(fs.Root.Lookup("d"));
    }

    [TestMethod]
    public void LongNamesGiveEnametoolong()
    {
        var fs = NewFs();
        File(fs.Root, new string('a', 255));
        Assert.AreEqual(Errno.ENAMETOOLONG, ErrnoOf(() => File(fs.Root, new string('a', 256))));
        Assert.AreEqual(Errno.ENAMETOOLONG, ErrnoOf(() => fs.Root.CreateDirectory(new string('é', 128), Dir(), Root)), "256 UTF-8 bytes");
        Assert.AreEqual(Errno.ENAMETOOLONG, ErrnoOf(() => fs.Root.Lookup(new string('b', 300))));
        Assert.AreEqual(Errno.ENAMETOOLONG, ErrnoOf(() => fs.Root.Rename(new string('a', 255), fs.Root, new string('c', 256), RenameFlags.None)));
    }

    [TestMethod]
    public void UnlinkedFileStaysUsableWhileOpen()
    {
        var fs = NewFs();
        var file = File(fs.Root, "f", "hello");
        var ops = file.Open(OpenFlags.ReadWrite);
        fs.Root.Unlink("f");
        Assert.IsNull(fs.Root.Lookup("f"));
        Assert.AreEqual(0u, file.GetAttributes().Links);
        long offset = 5;
        ops.Write(Encoding.UTF8.GetBytes(" world"), ref offset, append: false);
        Assert.AreEqual("hello world", ReadAll(ops));
        Assert.AreEqual(4096, memory.AllocatedBytes);
        ops.Release();
        Assert.AreEqual(0, memory.AllocatedBytes, "pages freed on the last close");
        Assert.AreEqual(0, fs.UsedBytes);
    }

    [TestMethod]
    public void UnlinkWithoutOpenFreesAtOnce()
    {
        var fs = NewFs();
        File(fs.Root, "f", new string('x', 9000));
        Assert.AreEqual(3 * 4096, memory.AllocatedBytes);
        fs.Root.Unlink("f");
        Assert.AreEqual(0, memory.AllocatedBytes);
    }

    [TestMethod]
    public void ReleasingTheFileSystemFreesData()
    {
        var fs = NewFs();
        var dir = fs.Root.CreateDirectory("d", Dir(), Root);
        File(dir, "a", "aaaa");
        var open = File(fs.Root, "b", "bbbb").Open(OpenFlags.ReadOnly);
        fs.Release();
        Assert.AreEqual(4096, memory.AllocatedBytes, "the open file keeps its data");
        Assert.AreEqual("bbbb", ReadAll(open));
        open.Release();
        Assert.AreEqual(0, memory.AllocatedBytes);
    }

    [TestMethod]
    public void ExtendedAttributes()
    {
        var fs = NewFs();
        var file = File(fs.Root, "f");
        Assert.AreEqual(Errno.ENODATA, ErrnoOf(() => file.GetExtendedAttribute("user.a", new byte[10])));
        Assert.AreEqual(Errno.ENODATA, ErrnoOf(() => file.SetExtendedAttribute("user.a", "v"u8, 2)), "XATTR_REPLACE of a missing name");
        file.SetExtendedAttribute("user.a", "value"u8, 1);
        Assert.AreEqual(Errno.EEXIST, ErrnoOf(() => file.SetExtendedAttribute("user.a", "v"u8, 1)), "XATTR_CREATE of an existing name");
        Assert.AreEqual(5, file.GetExtendedAttribute("user.a", []), "size query");
        Assert.AreEqual(Errno.ERANGE, ErrnoOf(() => file.GetExtendedAttribute("user.a", new byte[4])));
        var buffer = new byte[5];
        Assert.AreEqual(5, file.GetExtendedAttribute("user.a", buffer));
        Assert.AreEqual("value", Encoding.UTF8.GetString(buffer));
        file.SetExtendedAttribute("user.a", "xy"u8, 2);
        Assert.AreEqual(2, file.GetExtendedAttribute("user.a", []));
        file.SetExtendedAttribute("trusted.t", ""u8, 0);
        file.SetExtendedAttribute("security.s", "s"u8, 0);
        CollectionAssert.AreEqual(new[] { "user.a", "trusted.t", "security.s" }, file.ListExtendedAttributes().ToArray());
        Assert.AreEqual(0, file.GetExtendedAttribute("trusted.t", new byte[3]));
        file.RemoveExtendedAttribute("user.a");
        Assert.AreEqual(Errno.ENODATA, ErrnoOf(() => file.RemoveExtendedAttribute("user.a")));
        Assert.AreEqual(Errno.EOPNOTSUPP, ErrnoOf(() => file.SetExtendedAttribute("os2.x", "v"u8, 0)));
        Assert.AreEqual(Errno.EINVAL, ErrnoOf(() => file.SetExtendedAttribute("user.", "v"u8, 0)));
        Assert.AreEqual(Errno.ERANGE, ErrnoOf(() => file.SetExtendedAttribute("user." + new string('n', 251), "v"u8, 0)));
        Assert.AreEqual(Errno.E2BIG, ErrnoOf(() => file.SetExtendedAttribute("user.big", new byte[65537], 0)));
        Assert.AreEqual(Errno.EINVAL, ErrnoOf(() => file.SetExtendedAttribute("user.b", "v"u8, 4)));
        var link = fs.Root.CreateSymlink("l", "f", Root);
        Assert.AreEqual(Errno.EPERM, ErrnoOf(() => link.SetExtendedAttribute("user.a", "v"u8, 0)));
        link.SetExtendedAttribute("trusted.a", "v"u8, 0);
    }

    [TestMethod]
    public void MappedPagesAndReadWriteSeeTheSameBytes()
    {
        var fs = NewFs();
        var file = File(fs.Root, "f");
        var ops = file.Open(OpenFlags.ReadWrite);
        long offset = 0;
        ops.Write(Encoding.UTF8.GetBytes("written by write"), ref offset, append: false);
        file.SetAttributes(new AttributeUpdate(AttributeMask.Size, Size: 3 * 4096));

        Span<long> pages = stackalloc long[4];
        ops.Mappable!.GetPages(0, pages);
        Assert.AreEqual("written by write", Encoding.UTF8.GetString(memory.GetSpan(pages[0], 16)));
        Assert.AreEqual(2, memory.RefCount(pages[0]), "the file's reference and the caller's");
        Assert.AreEqual(2, memory.RefCount(pages[1]), "a hole got a page of its own");
        Assert.AreEqual(1, memory.RefCount(pages[3]), "past the end: the caller's page alone");
        Assert.AreEqual(3 * 8, file.GetAttributes().Blocks);

        "mapped"u8.CopyTo(memory.GetSpan(pages[1] + 10, 6));
        var buffer = new byte[6];
        long at = 4096 + 10;
        ops.Read(buffer, ref at);
        Assert.AreEqual("mapped", Encoding.UTF8.GetString(buffer));

        // A later write lands in the page the mapping holds.
        at = 4096 + 10;
        ops.Write("MAPPED"u8, ref at, append: false);
        Assert.AreEqual("MAPPED", Encoding.UTF8.GetString(memory.GetSpan(pages[1] + 10, 6)));

        // Truncation drops the file's references; the mapping keeps its own.
        file.SetAttributes(new AttributeUpdate(AttributeMask.Size, Size: 0));
        Assert.AreEqual(1, memory.RefCount(pages[0]));
        foreach (long page in pages)
        {
            memory.DecRef(page, 4096);
        }

        Assert.AreEqual(0, memory.AllocatedBytes);
        ops.Release();
    }

    [TestMethod]
    public void AppendIsAtomicPerWrite()
    {
        var fs = NewFs();
        var file = File(fs.Root, "log");
        var threads = Enumerable.Range(0, 4).Select(t => new Thread(() =>
        {
            var ops = file.Open(OpenFlags.WriteOnly | OpenFlags.Append);
            long offset = 0;
            for (int i = 0; i < 200; i++)
            {
                ops.Write(Encoding.UTF8.GetBytes($"{t}{new string((char)('a' + t), 9)}\n"), ref offset, append: true);
            }

            ops.Release();
        })).ToList();
        threads.ForEach(t => t.Start());
        threads.ForEach(t => t.Join());
        var lines = ReadAll(file).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.AreEqual(800, lines.Length);
        Assert.IsTrue(lines.All(l => l.Length == 10 && l[1..].All(c => c == (char)('a' + (l[0] - '0')))));
    }

    [TestMethod]
    public void AccessModeIsEnforcedByTheDescription()
    {
        var fs = NewFs();
        var file = File(fs.Root, "f", "x");
        var reader = file.Open(OpenFlags.ReadOnly);
        var writer = file.Open(OpenFlags.WriteOnly);
        long offset = 0;
        Assert.AreEqual(Errno.EBADF, ErrnoOf(() => reader.Write([1], ref offset, append: false)));
        Assert.AreEqual(Errno.EBADF, ErrnoOf(() => writer.Read(new byte[1], ref offset)));
        Assert.AreEqual(Errno.EISDIR, ErrnoOf(() => fs.Root.Open(OpenFlags.WriteOnly)));
        Assert.AreEqual(Errno.EISDIR, ErrnoOf(() => fs.Root.Open(OpenFlags.ReadOnly).Read(new byte[1], ref offset)));
        reader.Release();
        writer.Release();
    }

    [TestMethod]
    public void TimesFollowLinux()
    {
        var fs = NewFs();
        var old = new Timespec(1000, 0);
        var dir = fs.Root.CreateDirectory("d", Dir(), Root);
        dir.SetAttributes(new AttributeUpdate(AttributeMask.AccessTime | AttributeMask.ModifyTime, AccessTime: old, ModifyTime: old));
        var file = File(dir, "f");
        Assert.AreNotEqual(old, dir.GetAttributes().ModifyTime, "create changes the parent's mtime");

        file.SetAttributes(new AttributeUpdate(AttributeMask.AccessTime | AttributeMask.ModifyTime, AccessTime: old, ModifyTime: old));
        var before = file.GetAttributes();
        Assert.AreEqual(old, before.ModifyTime);
        Assert.AreEqual(old, before.AccessTime);
        Thread.Sleep(2);
        file.SetAttributes(new AttributeUpdate(AttributeMask.Mode, Mode: (FileMode)0x180));
        var afterChmod = file.GetAttributes();
        Assert.AreEqual(old, afterChmod.ModifyTime, "chmod leaves mtime");
        Assert.IsTrue(FsCompare(afterChmod.ChangeTime, before.ChangeTime) > 0, "chmod sets ctime");
        Assert.AreEqual(FileMode.Regular | (FileMode)0x180, afterChmod.Mode);

        WriteAll(file, "data");
        var afterWrite = file.GetAttributes();
        Assert.IsTrue(FsCompare(afterWrite.ModifyTime, old) > 0, "write sets mtime");

        file.SetAttributes(new AttributeUpdate(AttributeMask.AccessTime, AccessTime: old));
        ReadAll(file);
        Assert.IsTrue(FsCompare(file.GetAttributes().AccessTime, old) > 0, "read sets a stale atime");

        Thread.Sleep(2);
        var beforeLink = file.GetAttributes().ChangeTime;
        fs.Root.Link("hard", file);
        Assert.IsTrue(FsCompare(file.GetAttributes().ChangeTime, beforeLink) > 0, "link sets ctime");

        file.SetAttributes(new AttributeUpdate(AttributeMask.Uid | AttributeMask.Gid, Uid: 7, Gid: 8));
        Assert.AreEqual(7, file.GetAttributes().Uid);
        Assert.AreEqual(8, file.GetAttributes().Gid);
    }

    private static int FsCompare(Timespec a, Timespec b) =>
        a.Seconds != b.Seconds ? a.Seconds.CompareTo(b.Seconds) : a.Nanoseconds.CompareTo(b.Nanoseconds);

    [TestMethod]
    public void SpecialNodesAndSymlinks()
    {
        var fs = NewFs();
        var fifo = fs.Root.CreateNode("fifo", FileMode.Fifo | (FileMode)0x1A4, 0, Root);
        Assert.AreEqual(FileMode.Fifo | (FileMode)0x1A4, fifo.GetAttributes().Mode);
        var dev = fs.Root.CreateNode("blk", FileMode.BlockDevice | (FileMode)0x180, 0x803, Root);
        Assert.AreEqual(0x803ul, dev.GetAttributes().Rdev);
        Assert.AreEqual(Errno.EINVAL, ErrnoOf(() => fs.Root.CreateNode("d", FileMode.Directory, 0, Root)));
        var link = fs.Root.CreateSymlink("sym", "../some/where", Root);
        Assert.AreEqual("../some/where", link.ReadLink());
        Assert.AreEqual(13, link.GetAttributes().Size);
        Assert.AreEqual(FileMode.Symlink | (FileMode)0x1FF, link.GetAttributes().Mode);
        Assert.AreEqual(Errno.EINVAL, ErrnoOf(() => fifo.ReadLink()));
    }

    [TestMethod]
    public void SetGroupIdDirectoriesPassTheirGroupOn()
    {
        var fs = NewFs();
        var dir = fs.Root.CreateDirectory("shared", (FileMode)0xDFD, new FileOwner(0, 50)); // 02775
        var file = dir.CreateNode("f", Reg(), 0, new FileOwner(1000, 1000));
        Assert.AreEqual(50, file.GetAttributes().Gid);
        var sub = dir.CreateDirectory("sub", Dir(), new FileOwner(1000, 1000));
        Assert.AreEqual(50, sub.GetAttributes().Gid);
        Assert.AreEqual(FileMode.SetGid, sub.GetAttributes().Mode & FileMode.SetGid);
        Assert.AreEqual(1000, fs.Root.CreateNode("g", Reg(), 0, new FileOwner(1000, 1000)).GetAttributes().Gid);
    }

    [TestMethod]
    public void UnnamedFileCanBeLinkedLater()
    {
        var fs = NewFs();
        var dir = (TmpfsDirectory)fs.Root;
        var file = dir.CreateUnnamedFile(Reg(), Root);
        Assert.AreEqual(0u, file.GetAttributes().Links);
        var ops = file.Open(OpenFlags.ReadWrite);
        long offset = 0;
        ops.Write("tmp"u8, ref offset, append: false);
        fs.Root.Link("named", file);
        ops.Release();
        Assert.AreEqual("tmp", ReadAll(fs.Root.Lookup("named")!));
    }

    [TestMethod]
    public void UnnamedFileNeverLinkedGivesItsInodeBack()
    {
        var fs = NewFs("nr_inodes=2");
        var dir = (TmpfsDirectory)fs.Root;
        var file = dir.CreateUnnamedFile(Reg(), Root);
        Assert.AreEqual(Errno.ENOSPC, ErrnoOf(() => File(fs.Root, "x")));
        var ops = file.Open(OpenFlags.ReadWrite);
        long offset = 0;
        ops.Write("data"u8, ref offset, append: false);
        ops.Release();
        Assert.AreEqual(0, memory.AllocatedBytes);
        File(fs.Root, "x");
        Assert.AreEqual(Errno.ENOENT, ErrnoOf(() => fs.Root.Link("late", file)));
    }
}
