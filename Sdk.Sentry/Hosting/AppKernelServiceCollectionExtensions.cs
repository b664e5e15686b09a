using AppKernel;
using AppKernel.Sentry.Hosting;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers AppKernel in a service collection.</summary>
public static class AppKernelServiceCollectionExtensions
{
    /// <summary>
    /// Adds the AppKernel Sentry and its <see cref="ISandboxFactory"/>. Choose a platform on the
    /// returned builder (<c>UsePtracePlatform()</c>, <c>UseKvmPlatform()</c>) and add plugins.
    /// </summary>
    /// <param name="services">The service collection.</param>
    /// <param name="configure">Configures the options every sandbox starts from.</param>
    public static IAppKernelBuilder AddAppKernel(this IServiceCollection services, Action<SandboxOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        services.AddLogging();
        var options = services.AddOptions<SandboxOptions>();
        if (configure is not null)
        {
            options.Configure(configure);
        }

        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<SandboxOptions>, SandboxOptionsValidator>());
        services.TryAddSingleton<SentryServices>();
        services.TryAddSingleton<ISandboxFactory, SandboxFactory>();
        return new AppKernelBuilder(services);
    }
}
