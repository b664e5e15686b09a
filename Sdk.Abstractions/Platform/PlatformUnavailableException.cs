namespace AppKernel.Platform;

/// <summary>The selected platform cannot run on this machine; the message names the cause.</summary>
public sealed class PlatformUnavailableException : Exception
{
    /// <summary>Creates the exception with a message that names the cause.</summary>
    public PlatformUnavailableException(string message, Exception? inner = null) : base(message, inner)
    {
    }
}
