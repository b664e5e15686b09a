namespace AppKernel.Sentry.Memory;

/// <summary>
/// A populated area: program pages backed by a contiguous range of the memory file, each
/// holding one reference. <see cref="Cow"/> pages may be shared (page cache, fork) and are
/// mapped read-only; the first write copies them unless this mapping is their only user.
/// <see cref="Copied"/> marks, in a private file mapping, a page that is no longer the file's (a
/// write copied it): a punched hole leaves such pages where a truncation drops them.
/// </summary>
internal readonly record struct Pma(long FileOffset, bool Cow, bool Copied = false)
{
    public Pma SliceFrom(ulong delta) => this with { FileOffset = FileOffset + (long)delta };
}
