namespace AppKernel.Sentry.Fs.Tmpfs;

/// <summary>
/// The pages of a sparse file: file page index to memory-file offset. Chunks of 64 slots are
/// kept in a dictionary, so a file with a few pages far apart costs little and a dense file
/// costs 8 bytes per page. Not thread-safe: the owning file's lock guards it.
/// </summary>
internal sealed class PageTable
{
    private const int ChunkShift = 6;
    private const int ChunkSize = 1 << ChunkShift;
    private const int ChunkMask = ChunkSize - 1;

    private readonly Dictionary<long, Chunk> chunks = [];
    private Chunk? lastChunk;
    private long lastKey = -1;

    /// <summary>Pages held.</summary>
    public long Count { get; private set; }

    /// <summary>The memory-file offset of page <paramref name="index"/>, or -1 for a hole.</summary>
    public long Get(long index)
    {
        var chunk = Find(index >> ChunkShift);
        return chunk is null ? -1 : chunk.Slots[index & ChunkMask] - 1;
    }

    /// <summary>Records that page <paramref name="index"/> (a hole) is held at <paramref name="offset"/>.</summary>
    public void Set(long index, long offset)
    {
        long key = index >> ChunkShift;
        var chunk = Find(key);
        if (chunk is null)
        {
            chunk = new Chunk();
            chunks.Add(key, chunk);
            lastChunk = chunk;
            lastKey = key;
        }

        ref long slot = ref chunk.Slots[index & ChunkMask];
        if (slot != 0)
        {
            throw new InvalidOperationException("page already present");
        }

        slot = offset + 1;
        chunk.Used++;
        Count++;
    }

    /// <summary>Removes page <paramref name="index"/>; returns its offset, or -1 for a hole.</summary>
    public long Remove(long index)
    {
        long key = index >> ChunkShift;
        var chunk = Find(key);
        if (chunk is null || chunk.Slots[index & ChunkMask] == 0)
        {
            return -1;
        }

        long offset = chunk.Slots[index & ChunkMask] - 1;
        chunk.Slots[index & ChunkMask] = 0;
        chunk.Used--;
        Count--;
        if (chunk.Used == 0)
        {
            chunks.Remove(key);
            lastChunk = null;
            lastKey = -1;
        }

        return offset;
    }

    /// <summary>Removes every page at or past <paramref name="firstIndex"/>, adding their offsets to <paramref name="removed"/>.</summary>
    public void RemoveFrom(long firstIndex, List<long> removed)
    {
        long firstKey = firstIndex >> ChunkShift;
        List<long>? emptied = null;
        foreach (var (key, chunk) in chunks)
        {
            if (key < firstKey)
            {
                continue;
            }

            int start = key == firstKey ? (int)(firstIndex & ChunkMask) : 0;
            for (int i = start; i < ChunkSize; i++)
            {
                if (chunk.Slots[i] != 0)
                {
                    removed.Add(chunk.Slots[i] - 1);
                    chunk.Slots[i] = 0;
                    chunk.Used--;
                    Count--;
                }
            }

            if (chunk.Used == 0)
            {
                (emptied ??= []).Add(key);
            }
        }

        if (emptied is not null)
        {
            foreach (long key in emptied)
            {
                chunks.Remove(key);
            }

            lastChunk = null;
            lastKey = -1;
        }
    }

    private Chunk? Find(long key)
    {
        if (key == lastKey)
        {
            return lastChunk;
        }

        if (chunks.TryGetValue(key, out var chunk))
        {
            lastChunk = chunk;
            lastKey = key;
        }

        return chunk;
    }

    private sealed class Chunk
    {
        // Offset + 1 per page; 0 is a hole.
        public readonly long[] Slots = new long[ChunkSize];
        public int Used;
    }
}
