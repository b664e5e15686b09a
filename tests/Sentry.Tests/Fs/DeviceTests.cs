using AppKernel.Sentry.Fs.Dev;
using AppKernel.Sentry.Fs.Tmpfs;
using AppKernel.Sentry.Memory;
using AppKernel.Vfs;
using static AppKernel.Sentry.Tests.Fs.FsTestHelpers;
using FileMode = AppKernel.Vfs.FileMode;

namespace AppKernel.Sentry.Tests.Fs;

[TestClass]
public sealed class DeviceTests
{
    private static IFileOperations Open(uint minor, OpenFlags flags = OpenFlags.ReadWrite)
    {
        Assert.IsTrue(CharacterDevices.TryOpen(1, minor, flags, out var ops));
        return ops;
    }

    [TestMethod]
    public void NullReadsEofAndSwallowsWrites()
    {
        var ops = Open(3);
        var buffer = new byte[16];
        long offset = 0;
        Assert.AreEqual(0, ops.Read(buffer, ref offset));
        Assert.AreEqual(1000, ops.Write(new byte[1000], ref offset, append: false));
    }

    [TestMethod]
    public void ZeroReadsZerosAndSwallowsWrites()
    {
        var ops = Open(5);
        var buffer = Enumerable.Repeat((byte)7, 5000).ToArray();
        long offset = 0;
        Assert.AreEqual(5000, ops.Read(buffer, ref offset));
        Assert.IsTrue(buffer.All(b => b == 0));
        Assert.AreEqual(10, ops.Write(new byte[10], ref offset, append: false));
    }

    [TestMethod]
    public void FullRefusesWritesWithEnospc()
    {
        var ops = Open(7);
        long offset = 0;
        Assert.AreEqual(Errno.ENOSPC, ErrnoOf(() => ops.Write([1], ref offset, append: false)));
        var buffer = new byte[] { 1, 2, 3 };
        Assert.AreEqual(3, ops.Read(buffer, ref offset));
        Assert.IsTrue(buffer.All(b => b == 0));
    }

    [TestMethod]
    public void RandomDevicesGiveRandomBytesAndAcceptWrites()
    {
        foreach (uint minor in new uint[] { 8, 9 })
        {
            var ops = Open(minor);
            var a = new byte[64];
            var b = new byte[64];
            long offset = 0;
            Assert.AreEqual(64, ops.Read(a, ref offset));
            Assert.AreEqual(64, ops.Read(b, ref offset));
            Assert.IsFalse(a.SequenceEqual(b));
            Assert.IsTrue(a.Distinct().Count() > 16, "not a constant pattern");
            Assert.AreEqual(4, ops.Write([1, 2, 3, 4], ref offset, append: false));
        }
    }

    [TestMethod]
    public void UnknownDevicesAndAccessModes()
    {
        Assert.IsFalse(CharacterDevices.TryOpen(1, 4, OpenFlags.ReadOnly, out _));
        Assert.IsFalse(CharacterDevices.TryOpen(4, 3, OpenFlags.ReadOnly, out _));
        long offset = 0;
        Assert.AreEqual(Errno.EBADF, ErrnoOf(() => Open(3, OpenFlags.ReadOnly).Write([1], ref offset, append: false)));
        Assert.AreEqual(Errno.EBADF, ErrnoOf(() => Open(5, OpenFlags.WriteOnly).Read(new byte[1], ref offset)));
    }

    [TestMethod]
    public void DeviceNumbersEncodeAsLinux()
    {
        Assert.AreEqual(0x103ul, DeviceNumbers.Make(1, 3));
        Assert.AreEqual(0x8801ul, DeviceNumbers.Make(136, 1));
        ulong big = DeviceNumbers.Make(0x12345, 0x6789A);
        Assert.AreEqual(0x12345u, DeviceNumbers.Major(big));
        Assert.AreEqual(0x6789Au, DeviceNumbers.Minor(big));
        Assert.IsTrue(CharacterDevices.TryOpen(DeviceNumbers.Make(1, 9), OpenFlags.ReadOnly, null, out var ops));
        long at = 0;
        Assert.AreEqual(16, ops.Read(new byte[16], ref at));
    }

    [TestMethod]
    public void PopulatedDevDirectory()
    {
        using var memory = new MemoryFile(maxSize: 1L << 30);
        var fs = DevDirectory.CreateFileSystem(memory);
        var dev = fs.Root;
        Assert.AreEqual(FileMode.Directory | (FileMode)0x1ED, dev.GetAttributes().Mode);
        var expected = new Dictionary<string, uint> { ["null"] = 3, ["zero"] = 5, ["full"] = 7, ["random"] = 8, ["urandom"] = 9 };
        foreach (var (name, minor) in expected)
        {
            var node = dev.Lookup(name)!;
            var attributes = node.GetAttributes();
            Assert.AreEqual(FileMode.CharDevice | (FileMode)0x1B6, attributes.Mode, name);
            Assert.AreEqual(1u, DeviceNumbers.Major(attributes.Rdev));
            Assert.AreEqual(minor, DeviceNumbers.Minor(attributes.Rdev));
            Assert.IsTrue(CharacterDevices.TryOpen(attributes.Rdev, OpenFlags.ReadWrite, node, out var ops));
            Assert.AreSame(node, ops.Inode);
        }

        // The terminal devices (5:0 and 5:2) are served by devpts, not by the memory devices.
        foreach (var (name, minor) in new[] { ("tty", 0u), ("ptmx", 2u) })
        {
            var attributes = dev.Lookup(name)!.GetAttributes();
            Assert.AreEqual(FileMode.CharDevice | (FileMode)0x1B6, attributes.Mode, name);
            Assert.AreEqual(5u, DeviceNumbers.Major(attributes.Rdev));
            Assert.AreEqual(minor, DeviceNumbers.Minor(attributes.Rdev));
        }

        Assert.AreEqual("/proc/self/fd", dev.Lookup("fd")!.ReadLink());
        Assert.AreEqual("/proc/self/fd/0", dev.Lookup("stdin")!.ReadLink());
        Assert.AreEqual("/proc/self/fd/1", dev.Lookup("stdout")!.ReadLink());
        Assert.AreEqual("/proc/self/fd/2", dev.Lookup("stderr")!.ReadLink());
        Assert.AreEqual(FileMode.Directory | (FileMode)0x1ED, dev.Lookup("pts")!.GetAttributes().Mode);
        Assert.AreEqual(FileMode.Directory | (FileMode)0x3FF, dev.Lookup("shm")!.GetAttributes().Mode);
        Assert.AreEqual(0, Names(dev.Lookup("pts")!).Count);

        // Populating again leaves what exists.
        DevDirectory.Populate(dev);
        Assert.AreEqual(13, Names(dev).Count);
    }

    [TestMethod]
    public void PopulatesADirectoryOfAnyTmpfs()
    {
        using var memory = new MemoryFile(maxSize: 1L << 30);
        var root = new TmpfsFileSystem(memory).Root;
        var dev = root.CreateDirectory("dev", Dir(), Root);
        DevDirectory.Populate(dev, new FileOwner(0, 0));
        CollectionAssert.IsSubsetOf(new[] { "null", "zero", "full", "random", "urandom", "fd", "stdin", "stdout", "stderr", "pts", "shm" }, Names(dev));
    }
}
