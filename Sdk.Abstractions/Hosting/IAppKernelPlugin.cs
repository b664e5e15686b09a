namespace AppKernel;

/// <summary>
/// The entry point of a plugin assembly loaded by <c>AddPluginsFrom</c>: a public class with a
/// parameterless constructor that registers the plugin's services.
/// </summary>
public interface IAppKernelPlugin
{
    /// <summary>Registers the plugin's interceptors, handlers, filesystems or network stacks.</summary>
    void Configure(IAppKernelBuilder builder);
}
