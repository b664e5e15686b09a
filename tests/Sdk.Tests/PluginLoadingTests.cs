using System.Runtime.Loader;
using AppKernel.Sentry.Hosting;
using AppKernel.Syscalls;
using Microsoft.Extensions.DependencyInjection;

namespace AppKernel.Sdk.Tests;

[TestClass]
public sealed class PluginLoadingTests
{
    private static string BuiltPlugins
    {
        get
        {
            var directory = new DirectoryInfo(AppContext.BaseDirectory);
            while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "Sdk.sln")))
            {
                directory = directory.Parent;
            }

            Assert.IsNotNull(directory, "the repository root (Sdk.sln) was not found above the test binaries");
            return Path.Combine(directory.FullName, "artifacts", "test-plugins");
        }
    }

    /// <summary>A plugin directory holding copies of the named built plugins.</summary>
    private static string PluginDirectory(params string[] plugins)
    {
        string directory = Path.Combine(Path.GetTempPath(), "appkernel-plugins-" + Guid.NewGuid().ToString("N"));
        foreach (var plugin in plugins)
        {
            string source = Path.Combine(BuiltPlugins, plugin);
            Assert.IsTrue(Directory.Exists(source), $"test plugin {plugin} was not built into {source}");
            string target = Path.Combine(directory, plugin);
            Directory.CreateDirectory(target);
            foreach (var file in Directory.GetFiles(source))
            {
                File.Copy(file, Path.Combine(target, Path.GetFileName(file)));
            }
        }

        Directory.CreateDirectory(directory);
        return directory;
    }

    private static IServiceCollection Services(out IAppKernelBuilder builder)
    {
        var services = new ServiceCollection();
        builder = services.AddAppKernel().UsePlatform<FakePlatform>("fake");
        return services;
    }

    [TestMethod]
    public void APluginIsLoadedInItsOwnContextAndItsInterceptorAndHandlerRun()
    {
        var services = Services(out var builder);
        builder.AddPluginsFrom(PluginDirectory("AuditTestPlugin"));
        using var provider = services.BuildServiceProvider();

        var interceptor = provider.GetServices<ISyscallInterceptor>().Single();
        Assert.AreEqual("DenyGetppid", interceptor.GetType().Name);
        Assert.AreNotSame(AssemblyLoadContext.Default, AssemblyLoadContext.GetLoadContext(interceptor.GetType().Assembly),
            "the plugin must live in its own load context");
        Assert.AreSame(typeof(ISyscallInterceptor).Assembly, interceptor.GetType().GetInterface(nameof(ISyscallInterceptor))!.Assembly,
            "the contract type must be the host's own");

        var sentry = provider.GetRequiredService<SentryServices>();
        Assert.AreEqual(Errno.EACCES, sentry.Dispatcher.Dispatch(new FakeSyscallContext(110)).Errno, "getppid denied by the plugin");
        Assert.AreEqual(4242, sentry.Dispatcher.Dispatch(new FakeSyscallContext(39)).Raw, "getpid replaced by the plugin");
        Assert.IsTrue(sentry.Table.TryGetEntry(39, out var entry));
        Assert.AreEqual("AuditTestPlugin", entry.Source);
        Assert.AreEqual(1, provider.GetServices<LoadedPlugin>().Count());
    }

    [TestMethod]
    public void APluginThrowingInRegistrationGivesAClearError()
    {
        Services(out var builder);
        var error = Assert.ThrowsExactly<SandboxConfigurationException>(() => builder.AddPluginsFrom(PluginDirectory("ThrowingPlugin")));
        Assert.AreEqual(
            "Plugin 'ThrowingPlugin' failed while registering its services (ThrowingPlugin.ThrowingPluginEntry): the plugin's configuration file is missing",
            error.Message);
    }

    [TestMethod]
    public void TwoPluginsReplacingOneSyscallGiveAClearError()
    {
        var services = Services(out var builder);
        builder.AddPluginsFrom(PluginDirectory("AuditTestPlugin", "DuplicatePlugin"));
        using var provider = services.BuildServiceProvider();
        var error = Assert.ThrowsExactly<SandboxConfigurationException>(() => provider.GetRequiredService<SentryServices>());
        Assert.AreEqual(
            "Syscall getpid (39) is replaced by both 'AuditTestPlugin' and 'DuplicatePlugin'; at most one plugin may replace a syscall.",
            error.Message);
    }

    [TestMethod]
    public void AFolderWithoutItsAssemblyGivesAClearError()
    {
        string directory = PluginDirectory();
        Directory.CreateDirectory(Path.Combine(directory, "Empty"));
        Services(out var builder);
        var error = Assert.ThrowsExactly<SandboxConfigurationException>(() => builder.AddPluginsFrom(directory));
        Assert.AreEqual("Plugin folder 'Empty' has no assembly 'Empty.dll' (a plugin folder holds an assembly named after it).", error.Message);
    }

    [TestMethod]
    public void ACorruptAssemblyGivesAClearError()
    {
        string directory = PluginDirectory();
        Directory.CreateDirectory(Path.Combine(directory, "Corrupt"));
        File.WriteAllText(Path.Combine(directory, "Corrupt", "Corrupt.dll"), "this is not an assembly");
        Services(out var builder);
        var error = Assert.ThrowsExactly<SandboxConfigurationException>(() => builder.AddPluginsFrom(directory));
        StringAssert.StartsWith(error.Message, "Plugin 'Corrupt' could not be loaded from 'Corrupt.dll': ");
    }

    [TestMethod]
    public void AnAssemblyWithoutAnEntryPointGivesAClearError()
    {
        string directory = PluginDirectory();
        string folder = Path.Combine(directory, "NotAPlugin");
        Directory.CreateDirectory(folder);
        File.Copy(typeof(Microsoft.Extensions.Options.Options).Assembly.Location, Path.Combine(folder, "NotAPlugin.dll"));
        Services(out var builder);
        var error = Assert.ThrowsExactly<SandboxConfigurationException>(() => builder.AddPluginsFrom(directory));
        Assert.AreEqual("Plugin 'NotAPlugin' has no public class implementing IAppKernelPlugin; nothing to register.", error.Message);
    }

    [TestMethod]
    public void AMissingDirectoryGivesAClearError()
    {
        Services(out var builder);
        string missing = Path.Combine(Path.GetTempPath(), "appkernel-missing-" + Guid.NewGuid().ToString("N"));
        var error = Assert.ThrowsExactly<SandboxConfigurationException>(() => builder.AddPluginsFrom(missing));
        Assert.AreEqual($"Plugin directory '{missing}' does not exist.", error.Message);
    }
}
