namespace AppKernel.Memory;

/// <summary>
/// The one host memory file (a memfd) that holds all of a sandbox's program memory.
/// The Sentry maps it into itself and reads and writes program memory as spans over that
/// mapping; platforms map ranges of it at program addresses. Offsets and lengths are
/// page-aligned; pages are reference-counted and returned to the host when the count reaches zero.
/// </summary>
public interface IMemoryFile : IDisposable
{
    /// <summary>The host file descriptor of the memfd, for platforms that map it.</summary>
    int FileDescriptor { get; }

    /// <summary>The size of a page in bytes (4096 on x86-64).</summary>
    int PageSize { get; }

    /// <summary>Bytes currently allocated (reference count above zero).</summary>
    long AllocatedBytes { get; }

    /// <summary>Bytes the host actually holds for the file (pages touched and not freed).</summary>
    long ResidentBytes { get; }

    /// <summary>
    /// Allocates <paramref name="length"/> bytes of zeroed pages with a reference count of one.
    /// Throws <see cref="ErrnoException"/> with ENOMEM when the sandbox's memory limit would be exceeded.
    /// </summary>
    /// <returns>The offset of the range in the file.</returns>
    long Allocate(long length);

    /// <summary>Adds one reference to every page of the range.</summary>
    void IncRef(long offset, long length);

    /// <summary>Drops one reference from every page of the range, freeing pages that reach zero.</summary>
    void DecRef(long offset, long length);

    /// <summary>The reference count of the page at <paramref name="offset"/>.</summary>
    int RefCount(long offset);

    /// <summary>The Sentry's view of part of the file.</summary>
    Span<byte> GetSpan(long offset, int length);

    /// <summary>The address of the Sentry's mapping of offset 0 (for pointer arithmetic in hot paths).</summary>
    nint BaseAddress { get; }
}
