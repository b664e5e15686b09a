using AppKernel;

namespace ThrowingPlugin;

/// <summary>A broken plugin: it fails while registering.</summary>
public sealed class ThrowingPluginEntry : IAppKernelPlugin
{
    public void Configure(IAppKernelBuilder builder) => throw new InvalidOperationException("the plugin's configuration file is missing");
}
