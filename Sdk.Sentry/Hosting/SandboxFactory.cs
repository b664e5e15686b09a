using AppKernel.Platform;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace AppKernel.Sentry.Hosting;

/// <summary>Creates sandboxes: validates the options, checks the platform, starts the Gofer, builds the kernel.</summary>
internal sealed class SandboxFactory : ISandboxFactory
{
    private readonly IOptionsMonitor<SandboxOptions> options;
    private readonly SandboxOptionsValidator validator;
    private readonly SentryServices services;
    private readonly ILoggerFactory loggerFactory;

    public SandboxFactory(IOptionsMonitor<SandboxOptions> options, IEnumerable<IValidateOptions<SandboxOptions>> validators, SentryServices services, ILoggerFactory loggerFactory)
    {
        this.options = options;
        validator = validators.OfType<SandboxOptionsValidator>().First();
        this.services = services;
        this.loggerFactory = loggerFactory;
    }

    public Task<ISandbox> CreateAsync(Action<SandboxOptions>? configure = null, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var effective = SandboxOptionsCopy.Clone(options.CurrentValue);
        configure?.Invoke(effective);
        var result = validator.Validate(Options.DefaultName, effective);
        if (result.Failed)
        {
            throw new OptionsValidationException(Options.DefaultName, typeof(SandboxOptions), result.Failures);
        }

        string platformName = validator.ResolvePlatformName(effective)!;
        effective.Platform = platformName;
        IPlatform platform = services.GetPlatform(platformName);

        // Starting the Gofer and mounting filesystems block on a child process: keep that off the
        // caller's thread. The platform check runs there too, while the Gofer starts.
        return Task.Run<ISandbox>(() => Sandbox.Create(effective, platform, services, loggerFactory), cancellationToken);
    }
}
