using AppKernel.Sentry.Fs.Tmpfs;

namespace AppKernel.Sentry.Memory;

/// <summary>
/// Resident pages of a range by kind, as Linux's smaps walk counts them. A page's sharers are
/// the mappings holding it: its reference count, less the reference a file's page cache keeps.
/// Anonymous and shmem (tmpfs, shared anonymous) pages count as dirty, file pages as clean:
/// the Sentry does not track dirty bits, and those are the states such pages almost always have.
/// </summary>
internal sealed class Residency
{
    /// <summary>Proportional sizes carry this many fraction bits, as Linux's PSS_SHIFT.</summary>
    private const int PssShift = 12;

    public ulong Rss, SharedClean, SharedDirty, PrivateClean, PrivateDirty, Anonymous;
    public ulong RssAnon, RssFile, RssShmem;
    private ulong pss, pssDirty, pssAnon, pssFile, pssShmem;

    public ulong Pss => pss >> PssShift;

    public ulong PssDirty => pssDirty >> PssShift;

    public ulong PssAnon => pssAnon >> PssShift;

    public ulong PssFile => pssFile >> PssShift;

    public ulong PssShmem => pssShmem >> PssShift;

    public void Add(Vma vma, Pma pma, int references)
    {
        const ulong page = MemoryManager.PageSize;
        bool cached = vma.Mappable is not null && !pma.Anonymous;
        int sharers = Math.Max(1, cached ? references - 1 : references);
        bool anonymous = !vma.Shared && !cached;
        bool shmem = !anonymous && (vma.Mappable is null || vma.Mappable is TmpfsRegularFile);
        bool dirty = !cached || shmem;
        ulong share = (page << PssShift) / (ulong)sharers;

        Rss += page;
        pss += share;
        if (dirty)
        {
            pssDirty += share;
        }

        if (anonymous)
        {
            Anonymous += page;
            RssAnon += page;
            pssAnon += share;
        }
        else if (shmem)
        {
            RssShmem += page;
            pssShmem += share;
        }
        else
        {
            RssFile += page;
            pssFile += share;
        }

        if (sharers > 1)
        {
            if (dirty)
            {
                SharedDirty += page;
            }
            else
            {
                SharedClean += page;
            }
        }
        else if (dirty)
        {
            PrivateDirty += page;
        }
        else
        {
            PrivateClean += page;
        }
    }

    public void Include(Residency other)
    {
        Rss += other.Rss;
        SharedClean += other.SharedClean;
        SharedDirty += other.SharedDirty;
        PrivateClean += other.PrivateClean;
        PrivateDirty += other.PrivateDirty;
        Anonymous += other.Anonymous;
        RssAnon += other.RssAnon;
        RssFile += other.RssFile;
        RssShmem += other.RssShmem;
        pss += other.pss;
        pssDirty += other.pssDirty;
        pssAnon += other.pssAnon;
        pssFile += other.pssFile;
        pssShmem += other.pssShmem;
    }
}
