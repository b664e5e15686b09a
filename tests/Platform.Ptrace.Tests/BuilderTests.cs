using Microsoft.Extensions.DependencyInjection;

namespace AppKernel.Platform.Ptrace.Tests;

[TestClass]
public sealed class BuilderTests
{
    private sealed class Builder : IAppKernelBuilder
    {
        public IServiceCollection Services { get; } = new ServiceCollection();
    }

    [TestMethod]
    public void UsePtracePlatformRegistersAndSelectsIt()
    {
        var builder = new Builder();
        Assert.AreSame(builder, builder.UsePtracePlatform());
        using var provider = builder.Services.BuildServiceProvider();

        var registration = provider.GetServices<PlatformRegistration>().Single();
        Assert.AreEqual("ptrace", registration.Name);
        Assert.IsInstanceOfType<PtracePlatform>(registration.Factory(provider));
        Assert.AreEqual("ptrace", provider.GetRequiredService<DefaultPlatformSelection>().Name);
    }
}
