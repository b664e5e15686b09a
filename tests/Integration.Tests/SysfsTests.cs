namespace AppKernel.Integration.Tests;

/// <summary>sysfs: the CPU topology the C library and nproc read, read-only.</summary>
[TestClass]
public sealed class SysfsTests
{
    [TestMethod]
    [DynamicData(nameof(Sandboxes.Platforms), typeof(Sandboxes))]
    public async Task CpuCountsMatchTheHostAndSysfsIsReadOnly(string platform)
    {
        // Only what every host agrees on: a host may list more possible CPUs than are online.
        const string script = "cat /sys/devices/system/cpu/online; nproc; getconf _NPROCESSORS_ONLN";
        var native = ProgramRun.Native("/bin/sh", ["-c", script]);
        var run = await Sandboxes.Run(platform, "/bin/sh", ["-c", script + "; echo 1 > /sys/devices/system/cpu/online || echo refused"]);
        Assert.AreEqual(native.Text + "refused\n", run.Text, run.Error);
        StringAssert.Contains(run.Error, "Read-only file system");
    }
}
