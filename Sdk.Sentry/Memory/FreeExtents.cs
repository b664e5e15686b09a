namespace AppKernel.Sentry.Memory;

/// <summary>
/// Free ranges of the memory file, kept sorted and coalesced; allocation is first fit so
/// memory is reused low in the file. Not thread-safe: <see cref="MemoryFile"/> serialises access.
/// </summary>
internal sealed class FreeExtents
{
    // start → length, sorted by start.
    private readonly SortedList<long, long> extents = new();

    public long TotalBytes { get; private set; }

    /// <summary>Takes <paramref name="length"/> bytes from the first extent large enough; -1 when none is.</summary>
    public long Take(long length)
    {
        for (int i = 0; i < extents.Count; i++)
        {
            long start = extents.Keys[i];
            long size = extents.Values[i];
            if (size < length)
            {
                continue;
            }

            extents.RemoveAt(i);
            if (size > length)
            {
                extents.Add(start + length, size - length);
            }

            TotalBytes -= length;
            return start;
        }

        return -1;
    }

    /// <summary>Returns a range, merging it with its neighbours.</summary>
    public void Add(long start, long length)
    {
        TotalBytes += length;
        int index = LowerBound(start);

        // Merge with the following extent.
        if (index < extents.Count && extents.Keys[index] == start + length)
        {
            length += extents.Values[index];
            extents.RemoveAt(index);
        }

        // Merge with the preceding extent.
        if (index > 0)
        {
            long prevStart = extents.Keys[index - 1];
            long prevLength = extents.Values[index - 1];
            if (prevStart + prevLength == start)
            {
                extents[prevStart] = prevLength + length;
                return;
            }
        }

        extents.Add(start, length);
    }

    /// <summary>Drops free space at the end of the file (when the high-water mark shrinks).</summary>
    public bool TryTakeTail(long end, out long tailStart)
    {
        tailStart = 0;
        if (extents.Count == 0)
        {
            return false;
        }

        long start = extents.Keys[^1];
        long length = extents.Values[^1];
        if (start + length != end)
        {
            return false;
        }

        extents.RemoveAt(extents.Count - 1);
        TotalBytes -= length;
        tailStart = start;
        return true;
    }

    private int LowerBound(long start)
    {
        int lo = 0, hi = extents.Count;
        while (lo < hi)
        {
            int mid = (lo + hi) >>> 1;
            if (extents.Keys[mid] < start)
            {
                lo = mid + 1;
            }
            else
            {
                hi = mid;
            }
        }

        return lo;
    }
}
