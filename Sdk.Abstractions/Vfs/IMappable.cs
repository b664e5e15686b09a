namespace AppKernel.Vfs;

/// <summary>
/// A file whose contents can be mapped into programs: it hands out the memory-file pages
/// that hold its data, so shared mappings see writes made through read/write and vice versa.
/// </summary>
public interface IMappable
{
    /// <summary>
    /// Fills <paramref name="pageOffsets"/> with the memory-file offsets of the pages holding the
    /// file from <paramref name="fileOffset"/> (page-aligned), one page per element, allocating
    /// and filling pages as needed. Each returned page carries one reference for the caller.
    /// Pages beyond the end of the file are returned zeroed; a writable shared mapping extends nothing.
    /// </summary>
    void GetPages(long fileOffset, Span<long> pageOffsets);

    /// <summary>
    /// True when the contents cannot change while mapped (a file on a read-only filesystem). The
    /// memory manager may then copy a small private writable mapping when it is made instead of
    /// one page per write fault: nobody could see the difference.
    /// </summary>
    bool IsReadOnly => false;

    /// <summary>
    /// The file's size now, read when a mapping is populated or faults: a page wholly past it is not
    /// mapped, and a program touching it gets SIGBUS (BUS_ADRERR) as on Linux. The default,
    /// <see cref="long.MaxValue"/>, means no such limit (every page is backed, zeroed past the end).
    /// </summary>
    long Size => long.MaxValue;

    /// <summary>Called after a program wrote into shared pages (msync, munmap) so the file can write them back.</summary>
    void PagesWritten(long fileOffset, long length)
    {
    }

    /// <summary>
    /// The address spaces that map this file, or null when the file does not track them (its
    /// pages then never leave a mapping before it is unmapped). A file that shrinks, or frees
    /// pages another way, calls <see cref="MappingSet.DropPages"/> so that no mapping keeps
    /// pages the file no longer holds, as Linux's truncation unmaps them.
    /// </summary>
    MappingSet? Mappings => null;
}
