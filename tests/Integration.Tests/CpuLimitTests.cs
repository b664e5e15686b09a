namespace AppKernel.Integration.Tests;

/// <summary>CPU-time limits: RLIMIT_CPU as Linux enforces it (differential), and the sandbox's CPU budget.</summary>
[TestClass]
public sealed class CpuLimitTests
{
    [TestMethod]
    [DataRow("ptrace", "handled")]
    [DataRow("ptrace", "default")]
    public async Task RlimitCpuSendsSigxcpuThenSigkillAsLinuxDoes(string platform, string mode)
    {
        string path = Fixtures.Path("cpulimit");
        var native = ProgramRun.Native(path, [mode]);
        var sandboxed = await Sandboxes.Run(platform, path, [mode]);
        Assert.AreEqual(native.Text, sandboxed.Text, $"stdout differs; sandbox stderr: {sandboxed.Error}");
        Assert.AreEqual(native.Status, sandboxed.Status, $"exit status differs; sandbox stderr: {sandboxed.Error}");
    }

    [TestMethod]
    [DynamicData(nameof(Sandboxes.Platforms), typeof(Sandboxes))]
    public async Task TheSandboxCpuLimitEndsAProgramWithSigxcpu(string platform)
    {
        var started = DateTime.UtcNow;
        var run = await Sandboxes.Run(platform, Fixtures.Path("cpulimit"), ["none"], o => o.Limits.CpuSeconds = 0.5);
        Assert.AreEqual(128 + 24, run.Status, run.Error); // SIGXCPU's default action
        Assert.AreEqual("computing\n", run.Text);
        Assert.IsTrue(DateTime.UtcNow - started < TimeSpan.FromSeconds(30));
    }

    [TestMethod]
    [DynamicData(nameof(Sandboxes.Platforms), typeof(Sandboxes))]
    public async Task AProgramThatIgnoresSigxcpuIsKilledASecondLater(string platform)
    {
        var run = await Sandboxes.Run(platform, Fixtures.Path("cpulimit"), ["ignored"], o => o.Limits.CpuSeconds = 0.5);
        Assert.AreEqual(128 + 9, run.Status, run.Error);
        Assert.AreEqual("computing\n", run.Text);
    }
}
