using AppKernel.Sentry.Hosting;
using Microsoft.Extensions.DependencyInjection;

namespace AppKernel;

/// <summary>Loads AppKernel plugins from folders.</summary>
public static class AppKernelBuilderPluginExtensions
{
    /// <summary>
    /// Loads every plugin in <paramref name="directory"/>: each subfolder <c>Name/</c> holding
    /// <c>Name.dll</c> and its dependencies. Each plugin gets its own load context, shares the
    /// contract assemblies with the host, and registers its services through its
    /// <see cref="IAppKernelPlugin"/> classes. Throws <see cref="SandboxConfigurationException"/>
    /// naming the plugin and the cause when a folder is broken.
    /// </summary>
    public static IAppKernelBuilder AddPluginsFrom(this IAppKernelBuilder builder, string directory)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentException.ThrowIfNullOrWhiteSpace(directory);
        foreach (var plugin in PluginDirectoryLoader.Load(builder, directory))
        {
            builder.Services.AddSingleton(plugin);
        }

        return builder;
    }
}
