namespace AppKernel.Integration.Tests;

/// <summary>
/// mount and umount2 of tmpfs inside the sandbox (tests/fixtures/mounts.c). Not differential: run
/// natively as root, the fixture would change the host's mounts, so the output is compared with
/// the answers Linux gives.
/// </summary>
[TestClass]
public sealed class MountTests
{
    private const string AsRoot = """
        mount tmpfs: 0
        in /proc/self/mounts: 1
        f_type 0x1021994 blocks 256
        root mode 700
        the file below is hidden: 1
        write 2 MiB into a 1 MiB tmpfs: 1048576
        umount2 with an open file: -1 EBUSY
        umount2 with the cwd on it: -1 EBUSY
        umount2 not a mount point: -1 EINVAL
        umount2 bad flags: -1 EINVAL
        umount2 expire with detach: -1 EINVAL
        umount2 missing: -1 ENOENT
        mount unknown type: -1 ENODEV
        mount on a file: -1 ENOTDIR
        mount bad option: -1 EINVAL
        remount read-only: 0
        create on a read-only mount: -1 EROFS
        make private: 0
        umount2: 0
        in /proc/self/mounts: 0
        the file below is back: 1
        stacked mount 1: 0
        stacked mount 2: 0
        umount2 top: 0
        still mounted: 1
        umount2 detach: 0
        in /proc/self/mounts: 0
        umount2 root: -1 EBUSY
        done

        """;

    [TestMethod]
    [DynamicData(nameof(Sandboxes.Platforms), typeof(Sandboxes))]
    public async Task TmpfsMountsStayInsideTheSandbox(string platform)
    {
        var run = await Sandboxes.Run(platform, Fixtures.Path("mounts"), []);
        Assert.AreEqual(AsRoot, run.Text, run.Error);
        Assert.AreEqual(0, run.Status);
        Assert.IsFalse(File.ReadAllText("/proc/self/mounts").Contains("/tmp/mounts", StringComparison.Ordinal), "a sandbox mount reached the host");
    }

    [TestMethod]
    [DynamicData(nameof(Sandboxes.Platforms), typeof(Sandboxes))]
    public async Task ANonRootUserGetsEperm(string platform)
    {
        var run = await Sandboxes.Run(platform, Fixtures.Path("mounts"), [], o => { o.Uid = 1000; o.Gid = 1000; });
        Assert.AreEqual("mount as non-root: -1 EPERM\numount2 as non-root: -1 EPERM\n", run.Text, run.Error);
        Assert.AreEqual(0, run.Status);
    }

    /// <summary>
    /// fallocate on a file of a read-write bind mount (tests/fixtures/gofalloc.c): the Gofer's
    /// donated host descriptor does it, so the same host filesystem answers natively and inside,
    /// and the space and holes are in the host file afterwards.
    /// </summary>
    [TestMethod]
    [DynamicData(nameof(Sandboxes.Platforms), typeof(Sandboxes))]
    public async Task FallocateOnAReadWriteBindMountIsTheHosts(string platform)
    {
        using var run = await BoundDirectoryRun.CompareWithNative(platform, "gofalloc", "appkernel-falloc-");
        var host = new FileInfo(Path.Combine(run.BoundDirectory, "f"));
        Assert.AreEqual(40010, host.Length);
        byte[] data = File.ReadAllBytes(host.FullName);
        Assert.IsTrue(data.AsSpan(4096, 4096).IndexOfAnyExcept((byte)0) < 0, "the punched hole is not zero on the host");
        Assert.AreEqual((byte)'y', data[8200], "the mapped store did not reach the host");
    }

    [TestMethod]
    [DynamicData(nameof(Sandboxes.Platforms), typeof(Sandboxes))]
    public async Task FallocateOnAReadOnlyBindMountCannotWrite(string platform)
    {
        string directory = Directory.CreateTempSubdirectory("appkernel-falloc-ro-").FullName;
        try
        {
            File.WriteAllText(Path.Combine(directory, "existing"), "");
            var run = await Sandboxes.Run(platform, Fixtures.Path("gofalloc"), ["/mnt/data", "ro"],
                o => o.Mounts.Add(new MountSpec { Type = "bind", Source = directory, Target = "/mnt/data", ReadOnly = true }));
            Assert.AreEqual(
                "open existing for writing: -1 EROFS\ncreate: -1 EROFS\nfallocate read-only descriptor: -1 EBADF\nexisting: size 0 blocks 0\n",
                run.Text, run.Error);
            Assert.AreEqual(0, run.Status, run.Error);
            Assert.IsFalse(File.Exists(Path.Combine(directory, "new")));
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }
}
