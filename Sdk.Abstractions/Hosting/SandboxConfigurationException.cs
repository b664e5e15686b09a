namespace AppKernel;

/// <summary>The kernel's composition is inconsistent (two plugins replace one syscall, a plugin cannot load); the message says what and where.</summary>
public sealed class SandboxConfigurationException : Exception
{
    /// <summary>Creates the exception.</summary>
    public SandboxConfigurationException(string message, Exception? inner = null) : base(message, inner)
    {
    }
}
