using AppKernel.Sentry.Kernel;
using AppKernel.Sentry.Vfs;
using AppKernel.Vfs;
using FileMode = AppKernel.Vfs.FileMode;

namespace AppKernel.Sentry.Tests.Fs;

/// <summary>
/// The VFS's cache of names, found and absent: names of a filesystem that changes only through
/// the VFS are trusted until the sandbox changes them; a filesystem with a
/// <see cref="IFileSystem.LookupCacheTimeout"/> (like the Gofer's, whose host directory can
/// change behind the sandbox's back) is asked again once an entry is older than that.
/// </summary>
[TestClass]
public sealed class DentryCacheTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromMilliseconds(200);

    [TestMethod]
    public void AnAbsentNameIsCachedUntilTheSandboxCreatesIt()
    {
        var fs = new ChangingFileSystem(System.Threading.Timeout.InfiniteTimeSpan);
        var (vfs, context) = Mount(fs);
        Assert.AreEqual(Errno.ENOENT, ErrnoOf(vfs, context, "/new"));
        Assert.AreEqual(Errno.ENOENT, ErrnoOf(vfs, context, "/new"));
        Assert.AreEqual(1, fs.Lookups, "the absent name was cached");

        vfs.MakeDirectory(0, context, "/new", (FileMode)0x1ed);
        Assert.AreEqual(Errno.None, ErrnoOf(vfs, context, "/new"), "creating through the VFS replaces the absent entry");
        fs.RemoveBehindTheVfs("new");
        Thread.Sleep(Timeout);
        Assert.AreEqual(Errno.None, ErrnoOf(vfs, context, "/new"), "with no timeout, changes behind the VFS are not seen");
    }

    [TestMethod]
    public void NamesExpireAfterTheFileSystemsTimeout()
    {
        var fs = new ChangingFileSystem(Timeout);
        var (vfs, context) = Mount(fs);
        Assert.AreEqual(Errno.ENOENT, ErrnoOf(vfs, context, "/host-made"));
        fs.AddBehindTheVfs("host-made");
        fs.AddBehindTheVfs("kept");
        var kept = vfs.Resolve(context, "/kept", followFinal: true).Path.Dentry;
        int lookups = fs.Lookups;
        vfs.Resolve(context, "/kept", followFinal: true);
        Assert.AreEqual(lookups, fs.Lookups, "a fresh entry is trusted");

        Thread.Sleep(Timeout + TimeSpan.FromMilliseconds(50));
        Assert.AreEqual(Errno.None, ErrnoOf(vfs, context, "/host-made"), "the absent entry expired");
        Assert.AreSame(kept, vfs.Resolve(context, "/kept", followFinal: true).Path.Dentry, "a name still leading to the same inode keeps its dentry");

        fs.RemoveBehindTheVfs("kept");
        Thread.Sleep(Timeout + TimeSpan.FromMilliseconds(50));
        Assert.AreEqual(Errno.ENOENT, ErrnoOf(vfs, context, "/kept"));
        Assert.IsTrue(kept.Deleted, "the dentry of a name removed behind the VFS is marked deleted");
    }

    private static (VirtualFileSystem, PathContext) Mount(ChangingFileSystem fs)
    {
        var vfs = new VirtualFileSystem();
        vfs.MountRoot(fs, "test", readOnly: false);
        return (vfs, new PathContext(Credentials.ForUser(0, 0), vfs.RootPath, vfs.RootPath, null));
    }

    private static Errno ErrnoOf(VirtualFileSystem vfs, in PathContext context, string path)
    {
        try
        {
            vfs.Resolve(context, path, followFinal: true);
            return Errno.None;
        }
        catch (ErrnoException e)
        {
            return e.Errno;
        }
    }

    /// <summary>A one-directory filesystem whose names the test can change behind the VFS's back, counting lookups.</summary>
    private sealed class ChangingFileSystem : IFileSystem
    {
        private readonly Directory root;

        public ChangingFileSystem(TimeSpan timeout)
        {
            LookupCacheTimeout = timeout;
            root = new Directory(this, 1);
        }

        public string TypeName => "changing";

        public IInode Root => root;

        public TimeSpan LookupCacheTimeout { get; }

        public int Lookups { get; set; }

        public FileSystemStatistics GetStatistics() => default;

        public void AddBehindTheVfs(string name) => root.Children[name] = new Directory(this, (ulong)root.Children.Count + 2);

        public void RemoveBehindTheVfs(string name) => root.Children.Remove(name);

        private sealed class Directory(ChangingFileSystem fs, ulong ino) : IInode
        {
            public Dictionary<string, IInode> Children { get; } = [];

            public IFileSystem FileSystem => fs;

            public InodeAttributes GetAttributes() => new() { Ino = ino, Mode = FileMode.Directory | (FileMode)0x1ed, Links = 2 };

            public IInode? Lookup(string name)
            {
                fs.Lookups++;
                return Children.GetValueOrDefault(name);
            }

            public IInode CreateDirectory(string name, FileMode mode, FileOwner owner)
            {
                var child = new Directory(fs, (ulong)Children.Count + 100);
                Children[name] = child;
                return child;
            }

            public IFileOperations Open(OpenFlags flags) => throw ErrnoException.Of(Errno.EACCES);
        }
    }
}
