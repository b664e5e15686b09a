using AppKernel.Sentry.Fs.Overlay;
using AppKernel.Sentry.Fs.Tmpfs;
using AppKernel.Sentry.Memory;
using AppKernel.Vfs;
using static AppKernel.Sentry.Tests.Fs.FsTestHelpers;
using FileMode = AppKernel.Vfs.FileMode;

namespace AppKernel.Sentry.Tests.Fs;

[TestClass]
public sealed class ConcurrencyTests
{
    private static readonly Errno[] Expected =
        [Errno.ENOENT, Errno.EEXIST, Errno.ENOTEMPTY, Errno.EISDIR, Errno.ENOTDIR, Errno.EXDEV, Errno.EINVAL];

    private static void Hammer(IInode root, int seed)
    {
        var random = new Random(seed);
        var dirs = new[] { root, root.Lookup("a")!, root.Lookup("b")! };
        string[] names = ["n0", "n1", "n2", "n3", "n4", "d0", "d1"];
        for (int i = 0; i < 400; i++)
        {
            var dir = dirs[random.Next(dirs.Length)];
            string name = names[random.Next(names.Length)];
            try
            {
                switch (random.Next(8))
                {
                    case 0:
                        if (name[0] == 'd')
                        {
                            dir.CreateDirectory(name, Dir(), Root);
                        }
                        else
                        {
                            File(dir, name, new string('x', random.Next(1, 9000)));
                        }

                        break;
                    case 1:
                        dir.Unlink(name);
                        break;
                    case 2:
                        dir.RemoveDirectory(name);
                        break;
                    case 3:
                        dir.Rename(name, dirs[random.Next(dirs.Length)], names[random.Next(names.Length)],
                            random.Next(3) switch { 0 => RenameFlags.None, 1 => RenameFlags.NoReplace, _ => RenameFlags.Exchange });
                        break;
                    case 4:
                        _ = dir.ReadDirectory(2).Count();
                        break;
                    case 5:
                        if (dir.Lookup(name) is { } node && node.GetAttributes().Mode.IsRegular())
                        {
                            var ops = node.Open(OpenFlags.ReadWrite);
                            long offset = random.Next(10000);
                            ops.Write(new byte[random.Next(1, 5000)], ref offset, append: random.Next(2) == 0);
                            ops.Release();
                        }

                        break;
                    case 6:
                        if (dir.Lookup(name) is { } target && !target.GetAttributes().Mode.IsDirectory())
                        {
                            dir.Link(names[random.Next(names.Length)], target);
                        }

                        break;
                    default:
                        dir.Lookup(name)?.SetAttributes(new AttributeUpdate(AttributeMask.Size, Size: random.Next(9000)));
                        break;
                }
            }
            catch (ErrnoException e) when (Expected.Contains(e.Errno))
            {
            }
        }
    }

    private static void RunThreads(IInode root)
    {
        var threads = Enumerable.Range(0, 4).Select(seed => new Thread(() => Hammer(root, seed))).ToList();
        var failures = new List<Exception>();
        foreach (var thread in threads)
        {
            thread.Start();
        }

        foreach (var thread in threads)
        {
            Assert.IsTrue(thread.Join(TimeSpan.FromSeconds(60)), "deadlock");
        }
    }

    /// <summary>Walks the tree checking directory link counts; returns the bytes the files hold.</summary>
    private static long Check(IInode directory, HashSet<ulong> files)
    {
        long bytes = 0;
        uint subdirectories = 0;
        var names = new HashSet<string>();
        foreach (var entry in directory.ReadDirectory(2))
        {
            Assert.IsTrue(names.Add(entry.Name), $"{entry.Name} listed twice");
            var child = directory.Lookup(entry.Name)!;
            var attributes = child.GetAttributes();
            Assert.AreEqual(entry.Type, attributes.Mode.Type());
            if (attributes.Mode.IsDirectory())
            {
                subdirectories++;
                bytes += Check(child, files);
            }
            else if (files.Add(attributes.Ino))
            {
                bytes += attributes.Blocks * 512;
                Assert.IsTrue(attributes.Links >= 1);
            }
        }

        var own = directory.GetAttributes();
        if (own.Links != 1)
        {
            Assert.AreEqual(2 + subdirectories, own.Links);
        }

        return bytes;
    }

    [TestMethod]
    public void TmpfsStaysConsistentUnderConcurrentChanges()
    {
        using var memory = new MemoryFile(maxSize: 1L << 30);
        var fs = new TmpfsFileSystem(memory);
        fs.Root.CreateDirectory("a", Dir(), Root);
        fs.Root.CreateDirectory("b", Dir(), Root);
        RunThreads(fs.Root);
        long held = Check(fs.Root, []);
        Assert.AreEqual(held, memory.AllocatedBytes, "every page belongs to a file with a name");
        Assert.AreEqual(held, fs.UsedBytes);
    }

    [TestMethod]
    public void OverlayStaysConsistentUnderConcurrentChanges()
    {
        using var memory = new MemoryFile(maxSize: 1L << 30);
        var lower = new TmpfsFileSystem(memory);
        foreach (string dir in new[] { "a", "b" })
        {
            var d = lower.Root.CreateDirectory(dir, Dir(), Root);
            File(d, "n0", "lower");
            File(d, "n3", "lower");
            d.CreateDirectory("d0", Dir(), Root);
        }

        long lowerBytes = memory.AllocatedBytes;
        var upper = new TmpfsFileSystem(memory);
        var overlay = new OverlayFileSystem(lower, upper);
        RunThreads(overlay.Root);
        Check(overlay.Root, []);
        long upperHeld = Check(upper.Root, []);
        Assert.AreEqual(lowerBytes + upperHeld, memory.AllocatedBytes);
        Assert.AreEqual(lowerBytes, lower.UsedBytes, "the lower layer was not written");
    }
}
