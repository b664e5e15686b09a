namespace AppKernel.Sentry.Memory;

/// <summary>
/// A populated area: program pages backed by a contiguous range of the memory file, each
/// holding one reference. <see cref="Cow"/> pages may be shared (page cache, fork) and are
/// mapped read-only; the first write copies them unless this mapping is their only user.
/// <see cref="Anonymous"/> pages belong to the program (anonymous memory, private copies);
/// the others are a file's cached pages, of which the file holds a reference itself. In a
/// private file mapping an anonymous page is one a write copied: a punched hole leaves such
/// pages where a truncation drops them.
/// </summary>
internal readonly record struct Pma(long FileOffset, bool Cow, bool Anonymous)
{
    public Pma SliceFrom(ulong delta) => this with { FileOffset = FileOffset + (long)delta };
}
