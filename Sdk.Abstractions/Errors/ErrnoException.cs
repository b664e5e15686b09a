namespace AppKernel;

/// <summary>
/// Thrown by kernel code (VFS, memory, sockets) to fail the current syscall with a Linux errno.
/// The syscall dispatcher turns it into <c>-errno</c> for the program; it never escapes a sandbox.
/// </summary>
/// <remarks>
/// Error paths are not the hot path, but some are frequent (ENOENT while a loader searches
/// library paths, EAGAIN on non-blocking I/O): <see cref="Of"/> returns a cached instance per
/// errno so throwing one allocates nothing.
/// </remarks>
public sealed class ErrnoException : Exception
{
    private static readonly ErrnoException?[] Cache = new ErrnoException?[(int)Errno.ERESTART_RESTARTBLOCK + 1];

    /// <summary>Creates an exception for <paramref name="errno"/> with an optional detail for diagnostics.</summary>
    public ErrnoException(Errno errno, string? detail = null)
        : base(detail is null ? errno.ToString() : $"{errno}: {detail}")
    {
        Errno = errno;
    }

    /// <summary>The error the syscall fails with.</summary>
    public Errno Errno { get; }

    /// <summary>A shared instance for <paramref name="errno"/>; use it on frequent error paths.</summary>
    public static ErrnoException Of(Errno errno)
    {
        int index = (int)errno;
        if ((uint)index >= (uint)Cache.Length)
        {
            return new ErrnoException(errno);
        }

        return Cache[index] ??= new ErrnoException(errno);
    }
}
