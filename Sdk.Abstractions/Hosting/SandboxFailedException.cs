namespace AppKernel;

/// <summary>
/// The sandbox's kernel hit an internal error (a bug in a syscall handler or a platform failure)
/// and killed every program in it; the message is the diagnostic. The host process is unaffected.
/// </summary>
public sealed class SandboxFailedException : Exception
{
    /// <summary>Creates the exception.</summary>
    public SandboxFailedException(string message, Exception? inner = null) : base(message, inner)
    {
    }
}
