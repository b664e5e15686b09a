namespace AppKernel.Platform.Kvm.Tests;

[TestClass]
public sealed class AvailabilityTests
{
    [TestMethod]
    public void MissingDeviceIsReportedByName()
    {
        using var platform = new KvmPlatform("/dev/no-such-kvm");
        var e = Assert.ThrowsExactly<PlatformUnavailableException>(platform.EnsureAvailable);
        StringAssert.Contains(e.Message, "/dev/no-such-kvm does not exist");
    }

    [TestMethod]
    public void ANonKvmDeviceIsReported()
    {
        using var platform = new KvmPlatform("/dev/null");
        var e = Assert.ThrowsExactly<PlatformUnavailableException>(platform.EnsureAvailable);
        StringAssert.Contains(e.Message, "not a KVM device");
    }

    [TestMethod]
    public void CapabilitiesAndLayout()
    {
        using var platform = new KvmPlatform();
        Assert.AreEqual("kvm", platform.Name);
        Assert.AreEqual(
            PlatformCapabilities.MultipleThreads | PlatformCapabilities.PreciseFaultAccess | PlatformCapabilities.HardwareVirtualization |
            PlatformCapabilities.CpuTimeInTaskThread | PlatformCapabilities.ReusableTaskThreads,
            platform.Capabilities);
        Assert.AreEqual(0x7f80_0000_0000UL, platform.MaxUserAddress);
    }
}
