using AppKernel.Platform;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace AppKernel.Sdk.Tests;

[TestClass]
public sealed class OptionsValidationTests
{
    private static async Task<string> FailureOf(Action<SandboxOptions> configure, Action<IAppKernelBuilder>? compose = null)
    {
        var services = new ServiceCollection();
        var builder = services.AddAppKernel();
        (compose ?? (b => b.UsePlatform<FakePlatform>("fake")))(builder);
        await using var provider = services.BuildServiceProvider();
        var factory = provider.GetRequiredService<ISandboxFactory>();
        var error = await Assert.ThrowsExactlyAsync<OptionsValidationException>(() => factory.CreateAsync(configure));
        return string.Join("\n", error.Failures);
    }

    [TestMethod]
    public async Task MissingRootFs()
    {
        string missing = Path.Combine(Path.GetTempPath(), "appkernel-no-such-dir-" + Guid.NewGuid().ToString("N"));
        Assert.AreEqual($"SandboxOptions.RootFs: '{missing}' does not exist.", await FailureOf(o => o.RootFs = missing));
    }

    [TestMethod]
    public async Task RootFsThatIsAFile()
    {
        string file = Path.GetTempFileName();
        try
        {
            Assert.AreEqual($"SandboxOptions.RootFs: '{file}' is not a directory.", await FailureOf(o => o.RootFs = file));
        }
        finally
        {
            File.Delete(file);
        }
    }

    [TestMethod]
    public async Task AuditEventCapacityMustBePositive()
    {
        Assert.AreEqual("SandboxOptions.AuditEventCapacity must be positive (was 0).", await FailureOf(o => o.AuditEventCapacity = 0));
    }

    [TestMethod]
    public async Task EmptyRootFs()
    {
        Assert.AreEqual("SandboxOptions.RootFs must name the host directory the sandbox sees as '/'.", await FailureOf(o => o.RootFs = ""));
    }

    [TestMethod]
    public async Task UnknownPlatform()
    {
        Assert.AreEqual("SandboxOptions.Platform: unknown platform 'kvm'; registered: fake.", await FailureOf(o => o.Platform = "kvm"));
    }

    [TestMethod]
    public async Task NoPlatformRegistered()
    {
        Assert.AreEqual(
            "SandboxOptions.Platform: no platform is registered; call UsePtracePlatform() or UseKvmPlatform() on the AppKernel builder.",
            await FailureOf(_ => { }, _ => { }));
    }

    [TestMethod]
    public async Task SeveralPlatformsAndNoneChosen()
    {
        Assert.AreEqual(
            "SandboxOptions.Platform: several platforms are registered (one, two); set Platform to choose one.",
            await FailureOf(_ => { }, b => b.AddPlatform<FakePlatform>("one").AddPlatform<FakePlatform>("two")));
    }

    [TestMethod]
    [DataRow("MemoryBytes", "0")]
    [DataRow("Tasks", "-1")]
    [DataRow("OpenFiles", "0")]
    [DataRow("CpuSeconds", "-0.5")]
    [DataRow("WallSeconds", "0")]
    [DataRow("OutputBytes", "-10")]
    public async Task NonPositiveLimits(string limit, string value)
    {
        string message = await FailureOf(o =>
        {
            switch (limit)
            {
                case "MemoryBytes": o.Limits.MemoryBytes = long.Parse(value); break;
                case "Tasks": o.Limits.Tasks = int.Parse(value); break;
                case "OpenFiles": o.Limits.OpenFiles = int.Parse(value); break;
                case "CpuSeconds": o.Limits.CpuSeconds = double.Parse(value, System.Globalization.CultureInfo.InvariantCulture); break;
                case "WallSeconds": o.Limits.WallSeconds = double.Parse(value, System.Globalization.CultureInfo.InvariantCulture); break;
                case "OutputBytes": o.Limits.OutputBytes = long.Parse(value); break;
            }
        });
        Assert.AreEqual($"SandboxOptions.Limits.{limit} must be positive (was {value}).", message);
    }

    [TestMethod]
    public async Task AllowRulesWithoutHostNetworkConflict()
    {
        Assert.AreEqual(
            "SandboxOptions.AllowConnect/AllowBind are set but Network is None; allow rules only apply with NetworkMode.Host.",
            await FailureOf(o => o.AllowConnect.Add("10.0.0.0/8")));
    }

    [TestMethod]
    public async Task BadConnectRule()
    {
        Assert.AreEqual(
            "SandboxOptions.AllowConnect: '10.0.0.0:443' is not CIDR or CIDR:PORT (e.g. 10.0.0.0/8 or 192.168.1.5/32:443).",
            await FailureOf(o =>
            {
                o.Network = NetworkMode.Host;
                o.AllowConnect.Add("10.0.0.0:443");
            }));
    }

    [TestMethod]
    public async Task BadIpv6ConnectRuleAndBindPort()
    {
        Assert.AreEqual(
            "SandboxOptions.AllowConnect: '[::1]/128:0' is not CIDR or CIDR:PORT (e.g. 10.0.0.0/8 or 192.168.1.5/32:443).\n"
            + "SandboxOptions.AllowBind: port 70000 is outside 1-65535.",
            await FailureOf(o =>
            {
                o.Network = NetworkMode.Host;
                o.AllowConnect.Add("::1/128");
                o.AllowConnect.Add("[::1]/128:0");
                o.AllowBind.Add(70000);
            }));
    }

    [TestMethod]
    public async Task MountOnRootConflictsWithRootFs()
    {
        Assert.AreEqual(
            "SandboxOptions.Mounts: a mount on '/' conflicts with RootFs; set RootFs and RootFsMode instead.",
            await FailureOf(o => o.Mounts.Add(new MountSpec { Target = "/", Type = "tmpfs" })));
    }

    [TestMethod]
    public async Task RelativeWorkingDirectory()
    {
        Assert.AreEqual(
            "SandboxOptions.WorkingDirectory must be an absolute path inside the sandbox (was 'tmp').",
            await FailureOf(o => o.WorkingDirectory = "tmp"));
    }

    [TestMethod]
    public async Task SeveralFailuresAreAllReported()
    {
        string message = await FailureOf(o =>
        {
            o.Uid = -1;
            o.Hostname = "";
        });
        StringAssert.Contains(message, "SandboxOptions.Hostname must be 1 to 64 characters (was '').");
        StringAssert.Contains(message, "SandboxOptions.Uid must not be negative (was -1).");
    }

    [TestMethod]
    public async Task ValidOptionsReachThePlatformWhichNamesWhyItCannotRun()
    {
        var services = new ServiceCollection();
        services.AddAppKernel().UsePlatform<FakePlatform>("fake");
        await using var provider = services.BuildServiceProvider();
        var factory = provider.GetRequiredService<ISandboxFactory>();
        var error = await Assert.ThrowsExactlyAsync<PlatformUnavailableException>(() => factory.CreateAsync());
        Assert.AreEqual("the fake platform cannot run programs", error.Message);
    }
}
