using AppKernel.Gofer.Protocol;
using AppKernel.Sentry.Memory;
using AppKernel.Vfs;
using FileMode = AppKernel.Vfs.FileMode;

namespace AppKernel.Gofer.Tests;

/// <summary>One Gofer serving an empty directory read-write: every mutation must show up on the host.</summary>
[TestClass]
public sealed class ReadWriteGoferTests
{
    private static readonly FileOwner Root = new(0, 0);
    private static string root = string.Empty;
    private static GoferConnection gofer = null!;
    private static MemoryFile memory = null!;
    private static GoferFileSystem fs = null!;

    public TestContext TestContext { get; set; } = null!;

    [ClassInitialize]
    public static void Start(TestContext context)
    {
        root = HostFiles.TempDirectory("gofer-rw");
        gofer = GoferLauncher.Start([root], readWrite: true);
        memory = new MemoryFile(maxSize: 1L << 30);
        fs = new GoferFileSystem(gofer, 0, memory, readOnly: false);
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

    /// <summary>A fresh directory per test, on the host and as an inode.</summary>
    private IInode Scratch(out string hostPath)
    {
        string name = TestContext.TestName!;
        var inode = fs.Root.CreateDirectory(name, (FileMode)0x1ed, Root);
        hostPath = Path.Combine(root, name);
        return inode;
    }

    private static long Write(IFileOperations file, string text, long offset = 0, bool append = false)
    {
        file.Write(System.Text.Encoding.UTF8.GetBytes(text), ref offset, append);
        return offset;
    }

    private static string ReadAll(IInode inode)
    {
        var file = inode.Open(OpenFlags.ReadOnly);
        var buffer = new byte[1 << 16];
        long offset = 0;
        long n = file.Read(buffer, ref offset);
        return System.Text.Encoding.UTF8.GetString(buffer, 0, (int)n);
    }

    [TestMethod]
    public void CreateAndWriteShowUpOnTheHost()
    {
        var dir = Scratch(out var host);
        var file = dir.CreateNode("new.txt", FileMode.Regular | (FileMode)0x1a4, 0, Root);
        var open = file.Open(OpenFlags.WriteOnly);
        long end = Write(open, "hello");
        Assert.AreEqual(5, end);
        Write(open, " world", append: true);
        Assert.AreEqual("hello world", File.ReadAllText(Path.Combine(host, "new.txt")));
        Assert.AreEqual(0x81a4u, HostFiles.Lstat(Path.Combine(host, "new.txt")).Mode, "mode as asked (no umask in the gofer)");
        Assert.AreEqual(11, file.GetAttributes().Size, "the size is current right after a write");
        Assert.AreEqual("hello world", ReadAll(file));
        Assert.AreSame(file, dir.Lookup("new.txt"));
        Assert.AreEqual(Errno.EEXIST, Assert.ThrowsExactly<ErrnoException>(() => dir.CreateNode("new.txt", FileMode.Regular, 0, Root)).Errno);
    }

    [TestMethod]
    public void MkdirRmdirUnlinkShowUpOnTheHost()
    {
        var dir = Scratch(out var host);
        var sub = dir.CreateDirectory("sub", (FileMode)0x1c0, Root);
        Assert.IsTrue(Directory.Exists(Path.Combine(host, "sub")));
        Assert.AreEqual(0x41c0u, HostFiles.Lstat(Path.Combine(host, "sub")).Mode);
        Assert.AreEqual(3u, dir.GetAttributes().Links, "the parent's link count follows its new subdirectory");
        sub.CreateNode("f", FileMode.Regular | (FileMode)0x1a4, 0, Root);
        Assert.AreEqual(Errno.ENOTEMPTY, Assert.ThrowsExactly<ErrnoException>(() => dir.RemoveDirectory("sub")).Errno);
        Assert.AreEqual(Errno.EISDIR, Assert.ThrowsExactly<ErrnoException>(() => dir.Unlink("sub")).Errno);
        sub.Unlink("f");
        Assert.IsFalse(File.Exists(Path.Combine(host, "sub", "f")));
        dir.RemoveDirectory("sub");
        Assert.IsFalse(Directory.Exists(Path.Combine(host, "sub")));
        Assert.IsNull(dir.Lookup("sub"));
    }

    [TestMethod]
    public void RenameWithFlagsShowsUpOnTheHost()
    {
        var dir = Scratch(out var host);
        var a = dir.CreateNode("a", FileMode.Regular | (FileMode)0x1a4, 0, Root);
        Write(a.Open(OpenFlags.WriteOnly), "A");
        var b = dir.CreateNode("b", FileMode.Regular | (FileMode)0x1a4, 0, Root);
        Write(b.Open(OpenFlags.WriteOnly), "B");
        var other = dir.CreateDirectory("other", (FileMode)0x1ed, Root);

        Assert.AreEqual(Errno.EEXIST, Assert.ThrowsExactly<ErrnoException>(() => dir.Rename("a", dir, "b", RenameFlags.NoReplace)).Errno);
        dir.Rename("a", dir, "b", RenameFlags.Exchange);
        Assert.AreEqual("B", File.ReadAllText(Path.Combine(host, "a")));
        Assert.AreEqual("A", File.ReadAllText(Path.Combine(host, "b")));
        dir.Rename("b", other, "moved", RenameFlags.None);
        Assert.IsFalse(File.Exists(Path.Combine(host, "b")));
        Assert.AreEqual("A", File.ReadAllText(Path.Combine(host, "other", "moved")));
        dir.Rename("a", other, "moved", RenameFlags.None); // Replaces.
        Assert.AreEqual("B", File.ReadAllText(Path.Combine(host, "other", "moved")));
        Assert.AreEqual(Errno.EINVAL, Assert.ThrowsExactly<ErrnoException>(() => other.Rename("moved", dir, "w", RenameFlags.Whiteout)).Errno);

        // The gofer follows renames: the inode reached as "a" (now "other/moved") opens by its new name.
        var node = ((GoferInode)b).Node;
        Assert.AreEqual(0, gofer.Open(node, Host.O_RDONLY, out int fd, out _), "reopen after rename");
        Host.Close(fd);
        Assert.AreEqual(0, gofer.SetAttr(node, WireSetAttr.Size, 0, -1, -1, 0, default, default, out var truncated), "truncation reopens by name too");
        Assert.AreEqual(0, truncated.FileSize);
        Assert.AreEqual(0, new FileInfo(Path.Combine(host, "other", "moved")).Length);
    }

    [TestMethod]
    public void SymlinkAndLinkShowUpOnTheHost()
    {
        var dir = Scratch(out var host);
        var link = dir.CreateSymlink("s", "/etc/passwd", Root);
        Assert.AreEqual("/etc/passwd", new FileInfo(Path.Combine(host, "s")).LinkTarget);
        Assert.AreEqual("/etc/passwd", link.ReadLink());
        Assert.AreEqual(FileMode.Symlink, link.GetAttributes().Mode.Type());

        var file = dir.CreateNode("f", FileMode.Regular | (FileMode)0x1a4, 0, Root);
        Write(file.Open(OpenFlags.WriteOnly), "linked");
        dir.Link("hard", file);
        var hostFile = HostFiles.Lstat(Path.Combine(host, "f"));
        Assert.AreEqual(hostFile.Ino, HostFiles.Lstat(Path.Combine(host, "hard")).Ino);
        Assert.AreEqual(2ul, hostFile.Nlink);
        Assert.AreEqual(2u, file.GetAttributes().Links);
        Assert.AreSame(file, dir.Lookup("hard"));

        // Unlinking the first name leaves the inode reachable through the link.
        dir.Unlink("f");
        Assert.AreEqual(1u, file.GetAttributes().Links);
        Assert.AreEqual(0, gofer.Open(((GoferInode)file).Node, Host.O_RDONLY, out int fd, out _), "reopen by the remaining link");
        Host.Close(fd);
        Assert.AreEqual(Errno.EPERM, Assert.ThrowsExactly<ErrnoException>(() => dir.Link("dirlink", dir)).Errno);
    }

    [TestMethod]
    public void SetAttributesShowUpOnTheHost()
    {
        var dir = Scratch(out var host);
        var file = dir.CreateNode("f", FileMode.Regular | (FileMode)0x1a4, 0, Root);
        Write(file.Open(OpenFlags.WriteOnly), "0123456789");
        string path = Path.Combine(host, "f");

        file.SetAttributes(new AttributeUpdate(AttributeMask.Mode, Mode: (FileMode)0x180));
        Assert.AreEqual(0x8180u, HostFiles.Lstat(path).Mode);
        Assert.AreEqual((FileMode)0x8180, file.GetAttributes().Mode);

        // Set-user-ID and set-group-ID never reach the host.
        file.SetAttributes(new AttributeUpdate(AttributeMask.Mode, Mode: (FileMode)0xded));
        Assert.AreEqual(0x81edu, HostFiles.Lstat(path).Mode);

        file.SetAttributes(new AttributeUpdate(AttributeMask.Size, Size: 3));
        Assert.AreEqual("012", File.ReadAllText(path));
        Assert.AreEqual(3, file.GetAttributes().Size);

        file.SetAttributes(new AttributeUpdate(AttributeMask.ModifyTime | AttributeMask.AccessTime,
            AccessTime: new Timespec(1_000_000_000, 7), ModifyTime: new Timespec(1_100_000_000, 5)));
        var stat = HostFiles.Lstat(path);
        Assert.AreEqual(1_100_000_000, stat.Mtime);
        Assert.AreEqual(5, stat.MtimeNsec);
        Assert.AreEqual(1_000_000_000, stat.Atime);

        if (Environment.UserName == "root")
        {
            file.SetAttributes(new AttributeUpdate(AttributeMask.Uid | AttributeMask.Gid, Uid: 1234, Gid: 5678));
            stat = HostFiles.Lstat(path);
            Assert.AreEqual(1234u, stat.Uid);
            Assert.AreEqual(5678u, stat.Gid);
            Assert.AreEqual(1234, file.GetAttributes().Uid);
        }

        var fifo = dir.CreateNode("p", FileMode.Fifo | (FileMode)0x1a4, 0, Root);
        Assert.AreEqual(0x1000u, HostFiles.Lstat(Path.Combine(host, "p")).Mode & 0xF000);
        Assert.AreEqual(FileMode.Fifo, fifo.GetAttributes().Mode.Type());
        Assert.AreEqual(Errno.EPERM, Assert.ThrowsExactly<ErrnoException>(() => dir.CreateNode("dev", FileMode.CharDevice | (FileMode)0x1a4, 0x0103, Root)).Errno);
        Assert.AreEqual((int)Errno.EPERM, gofer.Mknod(((GoferInode)dir).Node, "dev", Host.S_IFCHR | 0x1a4, 0x0103, -1, -1, out _), "the gofer refuses devices too");
        Assert.IsFalse(File.Exists(Path.Combine(host, "dev")));
    }

    [TestMethod]
    public void MappedPagesStayCoherentWithReadAndWrite()
    {
        var dir = Scratch(out var host);
        string path = Path.Combine(host, "m");
        var file = dir.CreateNode("m", FileMode.Regular | (FileMode)0x1a4, 0, Root);
        var open = file.Open(OpenFlags.ReadWrite);
        var content = new byte[4096 + 1000];
        Array.Fill(content, (byte)'a');
        long offset = 0;
        open.Write(content, ref offset, append: false);

        var pages = new long[3];
        open.Mappable!.GetPages(0, pages);
        Assert.AreEqual((byte)'a', memory.GetSpan(pages[1], 4096)[999]);
        Assert.AreEqual(0, memory.GetSpan(pages[1], 4096)[1000], "zero past the end");

        // A store through a shared mapping is seen by read() at once, by the host after PagesWritten.
        memory.GetSpan(pages[0], 4096)[10] = (byte)'M';
        memory.GetSpan(pages[1], 4096)[2000] = (byte)'X'; // Past the end: must never extend the file.
        Assert.AreEqual('M', ReadAll(file)[10]);
        Assert.AreEqual('a', File.ReadAllText(path)[10]);
        open.Mappable.PagesWritten(0, 2 * 4096);
        Assert.AreEqual('M', File.ReadAllText(path)[10]);
        Assert.AreEqual(4096 + 1000, new FileInfo(path).Length);

        // Writing back unchanged pages touches nothing on the host.
        File.SetLastWriteTimeUtc(path, new DateTime(2001, 1, 1, 0, 0, 0, DateTimeKind.Utc));
        open.Mappable.PagesWritten(0, 2 * 4096);
        Assert.AreEqual(2001, File.GetLastWriteTimeUtc(path).Year, "no write for pages the host already has");

        // write() is seen by the mapping.
        offset = 20;
        open.Write("W"u8, ref offset, append: false);
        Assert.AreEqual((byte)'W', memory.GetSpan(pages[0], 4096)[20]);

        // Truncation zeroes what lies past the new end.
        file.SetAttributes(new AttributeUpdate(AttributeMask.Size, Size: 100));
        Assert.AreEqual(0, memory.GetSpan(pages[0], 4096)[100]);
        Assert.AreEqual((byte)'a', memory.GetSpan(pages[0], 4096)[99]);
        Assert.AreEqual(100, ReadAll(file).Length);

        foreach (var page in pages)
        {
            memory.DecRef(page, 4096);
        }
    }
}
