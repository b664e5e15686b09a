namespace AppKernel.Integration.Tests;

/// <summary>execve's other paths: #! scripts, its errors, and layout randomisation with a fixed seed.</summary>
[TestClass]
public sealed class LoaderTests
{
    private static string Script(string name, string contents, bool executable = true)
    {
        string path = Path.Combine(Repository.Artifacts, "scripts", name);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, contents);
        File.SetUnixFileMode(path, executable
            ? UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute
            : UnixFileMode.UserRead | UnixFileMode.UserWrite);
        return path;
    }

    [TestMethod]
    [DynamicData(nameof(Sandboxes.Platforms), typeof(Sandboxes))]
    public async Task AShebangScriptRunsItsInterpreterWithTheScriptAndArguments(string platform)
    {
        string script = Script("args.sh", "#!/bin/sh -e\necho \"script $0 got $1 and $2\"\n");
        var native = ProgramRun.Native(script, ["one", "two"]);
        var run = await Sandboxes.Run(platform, script, ["one", "two"]);
        Assert.AreEqual(native.Text, run.Text, run.Error);
        Assert.AreEqual($"script {script} got one and two\n", run.Text);
    }

    [TestMethod]
    [DynamicData(nameof(Sandboxes.Platforms), typeof(Sandboxes))]
    public async Task AFileThatIsNeitherElfNorScriptIsENOEXEC(string platform)
    {
        string junk = Script("junk.bin", "this is not a program\n");
        var error = await Assert.ThrowsExactlyAsync<SandboxStartException>(() => Sandboxes.Run(platform, junk, []));
        Assert.AreEqual(Errno.ENOEXEC, error.Errno);
    }

    [TestMethod]
    [DynamicData(nameof(Sandboxes.Platforms), typeof(Sandboxes))]
    public async Task AMissingInterpreterIsENOENT(string platform)
    {
        var error = await Assert.ThrowsExactlyAsync<SandboxStartException>(() => Sandboxes.Run(platform, Fixtures.Path("hello.badinterp"), []));
        Assert.AreEqual(Errno.ENOENT, error.Errno);
    }

    [TestMethod]
    [DynamicData(nameof(Sandboxes.Platforms), typeof(Sandboxes))]
    public async Task AScriptWithAMissingInterpreterIsENOENT(string platform)
    {
        string script = Script("nointerp.sh", "#!/no/such/interpreter\n");
        var error = await Assert.ThrowsExactlyAsync<SandboxStartException>(() => Sandboxes.Run(platform, script, []));
        Assert.AreEqual(Errno.ENOENT, error.Errno);
    }

    [TestMethod]
    [DynamicData(nameof(Sandboxes.Platforms), typeof(Sandboxes))]
    public async Task AFixedSeedGivesTheSameLayoutAndAnotherSeedAnother(string platform)
    {
        async Task<string> Maps(int seed) =>
            (await Sandboxes.Run(platform, "/bin/cat", ["/proc/self/maps"], o => o.RandomSeed = seed)).Text;

        string first = await Maps(42);
        string second = await Maps(42);
        string other = await Maps(43);
        StringAssert.Contains(first, "[stack]");
        StringAssert.Contains(first, "[heap]");
        Assert.AreEqual(first, second, "the same seed must give the same layout");
        Assert.AreNotEqual(first, other, "another seed must give another layout");
    }
}
