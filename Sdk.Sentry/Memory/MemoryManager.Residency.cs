namespace AppKernel.Sentry.Memory;

// What /proc/PID/smaps, smaps_rollup, status and statm say about resident memory.
internal sealed partial class MemoryManager
{
    /// <summary>
    /// Each VMA with the residency of its pages, for /proc/PID/smaps. Taken under the memory
    /// manager's lock, so the figures are one consistent snapshot.
    /// </summary>
    public List<(ulong Start, ulong End, Vma Vma, Residency Residency)> SnapshotResidency()
    {
        lock (gate)
        {
            var list = new List<(ulong, ulong, Vma, Residency)>(vmas.Count);
            foreach (var v in vmas.All)
            {
                var residency = new Residency();
                foreach (var p in pmas.Overlapping(v.Start, v.End))
                {
                    ulong start = Math.Max(p.Start, v.Start);
                    ulong end = Math.Min(p.End, v.End);
                    long first = p.Value.FileOffset + (long)(start - p.Start);
                    for (long page = first; page < first + (long)(end - start); page += (long)PageSize)
                    {
                        residency.Add(v.Value, p.Value, file.RefCount(page));
                    }
                }

                list.Add((v.Start, v.End, v.Value, residency));
            }

            return list;
        }
    }

    /// <summary>The resident bytes of the whole address space by kind (VmRSS's RssAnon, RssFile, RssShmem).</summary>
    public Residency TotalResidency()
    {
        var total = new Residency();
        foreach (var (_, _, _, residency) in SnapshotResidency())
        {
            total.Include(residency);
        }

        return total;
    }
}
