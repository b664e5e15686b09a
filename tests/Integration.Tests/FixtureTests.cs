namespace AppKernel.Integration.Tests;

/// <summary>C fixtures, static and dynamic: the same stdout and exit status as native.</summary>
[TestClass]
public sealed class FixtureTests
{
    public static IEnumerable<object[]> Cases()
    {
        string[] fixtures =
        [
            "hello", "fileio", "mmap", "mapfixed", "brk", "auxv", "badinput", "badargs", "nullderef", "forktree", "vforkexec", "threads", "orphan",
            "sigpipe", "altstack", "mutexes", "poll", "polledge", "epoll", "eventfd", "timerfd", "signalfd",
            "itimer", "posixtimer", "sigwait", "pidfd", "pidfdwait", "cputime", "creds", "sched", "pty", "ptytime", "miscsys",
            "locks", "fallocate", "splice", "openat2", "inotify", "memfd", "smaps", "fdreopen", "oomadj", "procmem", "dirchange", "procstat", "iocount", "unixsock", "scmrights", "tcploop", "udploop", "netdev", "tcpedge",
            "tcpoob", "truncmap",
        ];
        foreach (var platform in Sandboxes.Platforms)
        {
            foreach (var fixture in fixtures)
            {
                yield return [platform[0], fixture];
                yield return [platform[0], fixture + ".static"];
                yield return [platform[0], fixture + ".static-pie"];
            }
        }
    }

    [TestMethod]
    [DynamicData(nameof(Cases))]
    public async Task SameOutputAndStatusAsNative(string platform, string fixture)
    {
        string path = Fixtures.Path(fixture);
        string[] arguments = ["first", "second argument"];
        var environment = new Dictionary<string, string>(Sandboxes.DefaultEnvironment) { ["FIXTURE_NAME"] = fixture };
        var native = ProgramRun.Native(path, arguments, environment);
        var sandboxed = await Sandboxes.Run(platform, path, arguments, environment: environment);
        Assert.AreEqual(native.Text, sandboxed.Text, $"stdout differs; sandbox stderr: {sandboxed.Error}");
        Assert.AreEqual(native.Status, sandboxed.Status, $"exit status differs; sandbox stderr: {sandboxed.Error}");
    }

    public static IEnumerable<object[]> PermissionCases() =>
        Sandboxes.Platforms.SelectMany(p => new[] { "perms", "perms.static", "perms.static-pie" }.Select(f => new object[] { p[0], f }));

    /// <summary>
    /// tests/fixtures/perms.c sets up files as root and drops to uid 1000 itself, so it compares
    /// with native only where the tests run as root.
    /// </summary>
    [TestMethod]
    [DynamicData(nameof(PermissionCases))]
    public async Task ANonRootUserGetsLinuxsPermissionErrors(string platform, string fixture)
    {
        if (!Environment.IsPrivilegedProcess)
        {
            Assert.Inconclusive("the permissions fixture starts as root natively");
        }

        await SameOutputAndStatusAsNative(platform, fixture);
    }

    /// <summary>
    /// tests/fixtures/truncmap.c on a host file (a read-write bind mount served by the Gofer, the
    /// page cache of `GoferPageCache`) against the same program on a host directory natively.
    /// </summary>
    [TestMethod]
    [DynamicData(nameof(Sandboxes.Platforms), typeof(Sandboxes))]
    public async Task TruncationUnderMappingsOfAHostFileIsLinuxs(string platform)
    {
        using var run = await BoundDirectoryRun.CompareWithNative(platform, "truncmap", "appkernel-truncmap-");
        Assert.AreEqual(0, Directory.GetFiles(run.BoundDirectory).Length, "the fixture's file was not removed");
    }

    [TestMethod]
    [DynamicData(nameof(Sandboxes.Platforms), typeof(Sandboxes))]
    public async Task ANullDereferenceExitsWith139(string platform)
    {
        var run = await Sandboxes.Run(platform, Fixtures.Path("nullderef"), []);
        Assert.AreEqual(139, run.Status);
        Assert.AreEqual("about to fault\n", run.Text);
    }

    [TestMethod]
    [DynamicData(nameof(Sandboxes.Platforms), typeof(Sandboxes))]
    public async Task UnimplementedSyscallsAnswerEnosysAndTheSandboxCarriesOn(string platform)
    {
        var run = await Sandboxes.Run(platform, Fixtures.Path("enosys.static"), []);
        Assert.AreEqual("kexec_load: -1 ENOSYS\nsyscall 1000: -1 ENOSYS\nsyscall -1: -1 ENOSYS\nafter: ok\n", run.Text, run.Error);
        Assert.AreEqual(0, run.Status);
    }

    [TestMethod]
    [DynamicData(nameof(Sandboxes.Platforms), typeof(Sandboxes))]
    public async Task SixtyFourMebibytesThroughAPipeArriveWhole(string platform)
    {
        string path = Fixtures.Path("bigout.static");
        var native = ProgramRun.Native(path, ["64"]);
        var sandboxed = await Sandboxes.Run(platform, path, ["64"]);
        Assert.AreEqual(0, sandboxed.Status, sandboxed.Error);
        Assert.AreEqual(64 << 20, sandboxed.Output.Length);
        CollectionAssert.AreEqual(System.Security.Cryptography.SHA256.HashData(native.Output), System.Security.Cryptography.SHA256.HashData(sandboxed.Output));
    }
}
