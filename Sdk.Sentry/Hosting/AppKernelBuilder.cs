using Microsoft.Extensions.DependencyInjection;

namespace AppKernel.Sentry.Hosting;

/// <summary>The builder <c>AddAppKernel</c> returns.</summary>
internal sealed class AppKernelBuilder(IServiceCollection services) : IAppKernelBuilder
{
    public IServiceCollection Services { get; } = services;
}
