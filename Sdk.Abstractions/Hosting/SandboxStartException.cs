namespace AppKernel;

/// <summary>A program could not be started in a sandbox; <see cref="Errno"/> says why, as execve(2) would.</summary>
public sealed class SandboxStartException : Exception
{
    /// <summary>Creates the exception.</summary>
    public SandboxStartException(string message, Errno errno, Exception? inner = null) : base(message, inner)
    {
        Errno = errno;
    }

    /// <summary>The errno execve would have returned (ENOENT, ENOEXEC, EACCES, ...).</summary>
    public Errno Errno { get; }
}
