namespace AppKernel.Integration.Tests;

/// <summary>The sandbox's limits surface as Linux does: EAGAIN at the task limit, the sandbox's own OOM kill.</summary>
[TestClass]
public sealed class LimitTests
{
    [TestMethod]
    [DynamicData(nameof(Sandboxes.Platforms), typeof(Sandboxes))]
    public async Task AForkBombStopsAtTheTaskLimit(string platform)
    {
        var run = await Sandboxes.Run(platform, Fixtures.Path("forkbomb"), [], o => o.Limits.Tasks = 24);
        Assert.AreEqual("created 23 children, then EAGAIN\nreaped 23\n", run.Text, run.Error);
        Assert.AreEqual(0, run.Status);
    }

    [TestMethod]
    [DynamicData(nameof(Sandboxes.Platforms), typeof(Sandboxes))]
    public async Task TouchingMoreThanTheMemoryLimitGetsTheProcessKilled(string platform)
    {
        var run = await Sandboxes.Run(platform, Fixtures.Path("memhog"), ["2048"], o => o.Limits.MemoryBytes = 128L << 20);
        Assert.AreEqual("mapped\n", run.Text, run.Error);
        Assert.AreEqual(128 + 9, run.Status, "killed by SIGKILL");
    }
}
