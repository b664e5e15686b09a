namespace AppKernel;

/// <summary>Creates sandboxes from the configured <see cref="SandboxOptions"/>.</summary>
public interface ISandboxFactory
{
    /// <summary>
    /// Creates a sandbox: validates the options (throwing <see cref="Microsoft.Extensions.Options.OptionsValidationException"/>
    /// that names the option), starts its Gofer and prepares its filesystems.
    /// </summary>
    /// <param name="configure">Per-sandbox changes on top of the configured options.</param>
    /// <param name="cancellationToken">Cancels creation.</param>
    Task<ISandbox> CreateAsync(Action<SandboxOptions>? configure = null, CancellationToken cancellationToken = default);
}
