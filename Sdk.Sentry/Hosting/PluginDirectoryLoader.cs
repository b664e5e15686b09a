using System.Reflection;
using McMaster.NETCore.Plugins;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace AppKernel.Sentry.Hosting;

/// <summary>
/// Loads plugins from a directory: each subdirectory <c>Name/</c> holds <c>Name.dll</c>, loaded in
/// its own load context with the contract assemblies shared (so a plugin's
/// <see cref="AppKernel.Syscalls.ISyscallInterceptor"/> is the host's type), and its
/// <see cref="IAppKernelPlugin"/> classes register their services.
/// </summary>
internal static class PluginDirectoryLoader
{
    // The assemblies whose types cross the plugin boundary: they must be the host's copies.
    private static readonly Type[] SharedTypes =
    [
        typeof(IAppKernelPlugin),
        typeof(IServiceCollection),
        typeof(ServiceCollectionDescriptorExtensions),
        typeof(IOptions<>),
        typeof(ILogger),
    ];

    public static IReadOnlyList<LoadedPlugin> Load(IAppKernelBuilder builder, string directory)
    {
        if (!Directory.Exists(directory))
        {
            throw new SandboxConfigurationException($"Plugin directory '{directory}' does not exist.");
        }

        var loaded = new List<LoadedPlugin>();
        foreach (var folder in Directory.GetDirectories(directory).Order(StringComparer.Ordinal))
        {
            loaded.Add(LoadOne(builder, folder));
        }

        return loaded;
    }

    private static LoadedPlugin LoadOne(IAppKernelBuilder builder, string folder)
    {
        string name = Path.GetFileName(folder);
        string assemblyPath = Path.Combine(folder, name + ".dll");
        if (!File.Exists(assemblyPath))
        {
            throw new SandboxConfigurationException(
                $"Plugin folder '{name}' has no assembly '{name}.dll' (a plugin folder holds an assembly named after it).");
        }

        PluginLoader loader;
        Assembly assembly;
        try
        {
            loader = PluginLoader.CreateFromAssemblyFile(
                Path.GetFullPath(assemblyPath),
                SharedTypes,
                config => config.PreferSharedTypes = true);
            assembly = loader.LoadDefaultAssembly();
        }
        catch (Exception e) when (e is BadImageFormatException or FileLoadException or FileNotFoundException or InvalidOperationException)
        {
            throw new SandboxConfigurationException($"Plugin '{name}' could not be loaded from '{name}.dll': {e.Message}", e);
        }

        Type[] types;
        try
        {
            types = assembly.GetExportedTypes();
        }
        catch (Exception e) when (e is ReflectionTypeLoadException or FileNotFoundException or FileLoadException or TypeLoadException)
        {
            loader.Dispose();
            throw new SandboxConfigurationException($"Plugin '{name}' has types that cannot be loaded (a missing dependency?): {e.Message}", e);
        }

        var entryPoints = types
            .Where(t => typeof(IAppKernelPlugin).IsAssignableFrom(t) && t is { IsClass: true, IsAbstract: false })
            .ToArray();
        if (entryPoints.Length == 0)
        {
            loader.Dispose();
            throw new SandboxConfigurationException(
                $"Plugin '{name}' has no public class implementing {nameof(IAppKernelPlugin)}; nothing to register.");
        }

        foreach (var type in entryPoints)
        {
            IAppKernelPlugin plugin;
            try
            {
                plugin = (IAppKernelPlugin)Activator.CreateInstance(type)!;
                plugin.Configure(builder);
            }
            catch (Exception e)
            {
                var cause = e is TargetInvocationException { InnerException: { } inner } ? inner : e;
                throw new SandboxConfigurationException(
                    $"Plugin '{name}' failed while registering its services ({type.FullName}): {cause.Message}", cause);
            }
        }

        return new LoadedPlugin(name, assembly, loader);
    }
}

/// <summary>A plugin that was loaded; its load context lives as long as the service provider.</summary>
/// <param name="Name">The plugin's folder name.</param>
/// <param name="Assembly">Its main assembly.</param>
/// <param name="Loader">The loader that owns its load context.</param>
public sealed record LoadedPlugin(string Name, Assembly Assembly, PluginLoader Loader);
