namespace AppKernel.Sentry.Memory;

/// <summary>
/// Non-overlapping half-open address ranges [Start, End) with a value each, kept sorted.
/// Used for VMAs and for populated areas. A value that describes a range (a file offset at
/// Start) is re-based by the slicer when a range is split.
/// </summary>
internal sealed class RangeMap<T>
{
    private readonly List<Entry> entries = new();
    private readonly Func<T, ulong, T> slice;

    /// <param name="slice">Given the value of [s, e) and a delta, the value of the part starting at s + delta.</param>
    public RangeMap(Func<T, ulong, T> slice) => this.slice = slice;

    public record struct Entry(ulong Start, ulong End, T Value)
    {
        public readonly ulong Length => End - Start;
    }

    public int Count => entries.Count;

    /// <summary>The summed length of every entry, kept as entries come and go (no walk).</summary>
    public ulong TotalLength { get; private set; }

    public Entry this[int index] => entries[index];

    public IReadOnlyList<Entry> All => entries;

    /// <summary>Index of the first entry whose End is above <paramref name="address"/> (Count if none).</summary>
    public int FirstEndingAbove(ulong address)
    {
        int lo = 0, hi = entries.Count;
        while (lo < hi)
        {
            int mid = (lo + hi) >>> 1;
            if (entries[mid].End <= address)
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

    /// <summary>The entry containing <paramref name="address"/>.</summary>
    public bool TryFind(ulong address, out Entry entry, out int index)
    {
        index = FirstEndingAbove(address);
        if (index < entries.Count && entries[index].Start <= address)
        {
            entry = entries[index];
            return true;
        }

        entry = default;
        return false;
    }

    /// <summary>True when any entry intersects [start, end).</summary>
    public bool Overlaps(ulong start, ulong end)
    {
        int i = FirstEndingAbove(start);
        return i < entries.Count && entries[i].Start < end;
    }

    /// <summary>True when [start, end) is entirely covered by entries with no gap.</summary>
    public bool Covers(ulong start, ulong end)
    {
        ulong at = start;
        for (int i = FirstEndingAbove(start); i < entries.Count && at < end; i++)
        {
            if (entries[i].Start > at)
            {
                return false;
            }

            at = entries[i].End;
        }

        return at >= end;
    }

    /// <summary>Splits entries straddling <paramref name="start"/> or <paramref name="end"/>; returns the index range of entries inside.</summary>
    public (int First, int Last) Isolate(ulong start, ulong end)
    {
        SplitAt(start);
        SplitAt(end);
        int first = FirstEndingAbove(start);
        int last = first;
        while (last < entries.Count && entries[last].Start < end)
        {
            last++;
        }

        return (first, last);
    }

    /// <summary>Removes everything in [start, end), splitting straddling entries; returns what was removed.</summary>
    public List<Entry> Remove(ulong start, ulong end)
    {
        var (first, last) = Isolate(start, end);
        var removed = entries.GetRange(first, last - first);
        entries.RemoveRange(first, last - first);
        foreach (var r in removed)
        {
            TotalLength -= r.Length;
        }

        return removed;
    }

    /// <summary>Inserts an entry; the range must be free.</summary>
    public void Insert(ulong start, ulong end, T value)
    {
        if (start >= end)
        {
            throw new ArgumentException($"empty range {start:x}-{end:x}");
        }

        int i = FirstEndingAbove(start);
        if (i < entries.Count && entries[i].Start < end)
        {
            throw new InvalidOperationException($"range {start:x}-{end:x} overlaps {entries[i].Start:x}-{entries[i].End:x}");
        }

        entries.Insert(i, new Entry(start, end, value));
        TotalLength += end - start;
    }

    /// <summary>Replaces the value of entry <paramref name="index"/>.</summary>
    public void SetValue(int index, T value) => entries[index] = entries[index] with { Value = value };

    /// <summary>Replaces the bounds of entry <paramref name="index"/> (the caller keeps ranges disjoint).</summary>
    public void SetBounds(int index, ulong start, ulong end)
    {
        TotalLength = TotalLength - entries[index].Length + (end - start);
        entries[index] = entries[index] with { Start = start, End = end };
    }

    /// <summary>Entries intersecting [start, end), without splitting.</summary>
    public IEnumerable<Entry> Overlapping(ulong start, ulong end)
    {
        for (int i = FirstEndingAbove(start); i < entries.Count && entries[i].Start < end; i++)
        {
            yield return entries[i];
        }
    }

    /// <summary>Merges adjacent entries when <paramref name="canMerge"/> says their values continue each other.</summary>
    public void Coalesce(ulong start, ulong end, Func<Entry, Entry, bool> canMerge)
    {
        int i = Math.Max(0, FirstEndingAbove(start) - 1);
        while (i + 1 < entries.Count && entries[i].Start <= end)
        {
            var a = entries[i];
            var b = entries[i + 1];
            if (a.End == b.Start && canMerge(a, b))
            {
                entries[i] = a with { End = b.End };
                entries.RemoveAt(i + 1);
            }
            else
            {
                i++;
            }
        }
    }

    public void Clear()
    {
        entries.Clear();
        TotalLength = 0;
    }

    private void SplitAt(ulong address)
    {
        if (!TryFind(address, out var entry, out int index) || entry.Start == address)
        {
            return;
        }

        entries[index] = entry with { End = address };
        entries.Insert(index + 1, new Entry(address, entry.End, slice(entry.Value, address - entry.Start)));
    }
}
