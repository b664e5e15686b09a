namespace AppKernel.Gofer;

/// <summary>
/// The Gofer could not be started or its connection is unusable. The message names the cause
/// (no dotnet host found, an attach root that cannot be opened, the Gofer's exit status and
/// what it printed). Filesystem operations on a failed connection throw
/// <see cref="ErrnoException"/> with EIO instead, so that programs see an I/O error.
/// </summary>
public sealed class GoferException : IOException
{
    /// <summary>Creates the exception.</summary>
    public GoferException(string message, Exception? inner = null)
        : base(message, inner)
    {
    }
}
