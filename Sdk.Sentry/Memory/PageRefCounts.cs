namespace AppKernel.Sentry.Memory;

/// <summary>
/// Reference counts of memory-file pages, indexed by page number. Stored in chunks created on
/// first use, so a sparse 1 TiB file costs memory only for the parts that were ever allocated.
/// Not thread-safe: <see cref="MemoryFile"/> serialises access.
/// </summary>
internal sealed class PageRefCounts
{
    private const int ChunkShift = 16; // 65,536 pages (256 MiB of memory) per chunk
    private const int ChunkSize = 1 << ChunkShift;
    private readonly int[]?[] chunks;

    public PageRefCounts(long maxPages)
    {
        chunks = new int[]?[(maxPages + ChunkSize - 1) >> ChunkShift];
    }

    public int Get(long page)
    {
        var chunk = chunks[page >> ChunkShift];
        return chunk is null ? 0 : chunk[page & (ChunkSize - 1)];
    }

    /// <summary>Adds <paramref name="delta"/> and returns the new count.</summary>
    public int Add(long page, int delta)
    {
        ref var chunk = ref chunks[page >> ChunkShift];
        chunk ??= new int[ChunkSize];
        int value = chunk[page & (ChunkSize - 1)] += delta;
        if (value < 0)
        {
            throw new InvalidOperationException($"memory file page {page} released more often than referenced");
        }

        return value;
    }
}
