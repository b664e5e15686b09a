namespace AppKernel.Integration.Tests;

/// <summary>
/// /proc files whose values belong to the sandbox rather than to a differential run: boot and
/// random ids, network sysctls that match the sandbox's own stack, the cgroup line.
/// </summary>
[TestClass]
public sealed class ProcSysTests
{
    [TestMethod]
    [DynamicData(nameof(Sandboxes.Platforms), typeof(Sandboxes))]
    public async Task SysctlsAndIdsDescribeTheSandbox(string platform)
    {
        const string script =
            "cat /proc/sys/kernel/random/boot_id /proc/sys/kernel/random/boot_id " +
            "/proc/sys/kernel/random/uuid /proc/sys/kernel/random/uuid " +
            "/proc/sys/net/core/somaxconn /proc/sys/net/ipv4/ip_local_port_range /proc/self/cgroup";
        var run = await Sandboxes.Run(platform, "/bin/sh", ["-c", script]);
        Assert.AreEqual(0, run.Status, run.Error);
        string[] lines = run.Text.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.HasCount(7, lines, run.Text);
        Assert.IsTrue(Guid.TryParseExact(lines[0], "D", out _), lines[0]);
        Assert.AreEqual(lines[0], lines[1], "boot_id is fixed for the sandbox's life");
        Assert.IsTrue(Guid.TryParseExact(lines[2], "D", out _) && Guid.TryParseExact(lines[3], "D", out _), run.Text);
        Assert.AreNotEqual(lines[2], lines[3], "each read of uuid is a new one");
        Assert.AreEqual("4096", lines[4]);
        Assert.AreEqual("32768\t60999", lines[5]);
        Assert.AreEqual("0::/", lines[6]);

        var other = await Sandboxes.Run(platform, "/bin/cat", ["/proc/sys/kernel/random/boot_id"]);
        Assert.AreNotEqual(lines[0], other.Text.Trim(), "another sandbox is another boot");
    }
}
