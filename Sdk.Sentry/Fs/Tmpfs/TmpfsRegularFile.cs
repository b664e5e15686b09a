using AppKernel.Vfs;
using FileMode = AppKernel.Vfs.FileMode;

namespace AppKernel.Sentry.Fs.Tmpfs;

/// <summary>
/// A regular file whose data lives in memory-file pages. The file is sparse: a hole has no page
/// and reads as zeros. Bytes past the size in the last page are always zero, so growing the
/// file never exposes old data. The data stays while the file has a name or is open; the file's
/// own page references are dropped when neither holds (mappings keep their own references).
/// </summary>
internal sealed class TmpfsRegularFile : TmpfsInode, IInode, IMappable
{
    private const int PageSize = TmpfsFileSystem.PageSize;
    private const int PageShift = TmpfsFileSystem.PageShift;

    // Guarded by Lock.
    private readonly PageTable pages = new();
    private long size;
    private int openCount;

    /// <summary>An unnamed (O_TMPFILE) file that may still be given a name; guarded by <see cref="TmpfsInode.Lock"/>.</summary>
    internal bool Linkable;

    /// <summary>F_SEAL_* bits (memfd sealing); every other tmpfs file starts with F_SEAL_SEAL alone, as Linux's shmem.</summary>
    internal const int SealSeal = 1, SealShrink = 2, SealGrow = 4, SealWrite = 8, SealFutureWrite = 0x10, SealExec = 0x20;

    private int seals = SealSeal;

    // Made when the file is first mapped (or sealed against writes); never cleared.
    private MappingSet? mappings;

    // Orders size changes that drop pages with the unmapping that follows them (Linux's i_rwsem for
    // truncate): taken before Lock, and held while mappings drop the pages, which Lock is not.
    private readonly object shrinkGate = new();

    /// <summary>The file's seals (F_GET_SEALS).</summary>
    internal int Seals
    {
        get
        {
            lock (Lock)
            {
                return seals;
            }
        }
    }

    /// <summary>memfd_create with MFD_ALLOW_SEALING starts with no seals (or F_SEAL_EXEC for MFD_NOEXEC_SEAL).</summary>
    internal void InitialSeals(int value)
    {
        lock (Lock)
        {
            seals = value;
        }
    }

    /// <summary>F_ADD_SEALS: EPERM once F_SEAL_SEAL is set; F_SEAL_EXEC on an executable file implies the write seals.</summary>
    internal void AddSeals(int added)
    {
        lock (Lock)
        {
            if ((seals & SealSeal) != 0)
            {
                throw ErrnoException.Of(Errno.EPERM);
            }

            if ((added & SealExec) != 0 && ((int)Mode & 0x49) != 0)
            {
                added |= SealShrink | SealGrow | SealWrite | SealFutureWrite;
            }

            // F_SEAL_WRITE waits for no writable shared mapping: while one exists it is EBUSY, and
            // once set no new one can be made (mmap gives EPERM).
            if ((added & SealWrite) != 0 && (seals & SealWrite) == 0 && !Mappings.TryDenyWritable())
            {
                throw ErrnoException.Of(Errno.EBUSY);
            }

            seals |= added;
        }
    }

    public TmpfsRegularFile(TmpfsFileSystem fs, FileMode mode, FileOwner owner)
        : base(fs, mode, owner, links: 1)
    {
    }

    public override IFileOperations Open(OpenFlags flags)
    {
        lock (Lock)
        {
            openCount++;
        }

        return new TmpfsFileDescription(this, flags);
    }

    public override void SetAttributes(in AttributeUpdate update)
    {
        if ((update.Mask & AttributeMask.Size) == 0)
        {
            lock (Lock)
            {
                ApplyAttributesLocked(update);
            }

            return;
        }

        lock (shrinkGate)
        {
            long dropFrom = long.MaxValue;
            lock (Lock)
            {
                if ((update.Size < size && (seals & SealShrink) != 0) || (update.Size > size && (seals & SealGrow) != 0))
                {
                    throw ErrnoException.Of(Errno.EPERM);
                }

                if (update.Size >= 0 && update.Size < size)
                {
                    dropFrom = PagesFor(update.Size) << PageShift;
                }

                TruncateLocked(update.Size);
                var now = Timespec.Now;
                ModifyTime = ChangeTime = now;
                ApplyAttributesLocked(update);
            }

            // As Linux's truncate_pagecache: mappings lose the pages past the new end, private copies
            // included, so touching them is SIGBUS and a later growth reads the file's zeros.
            if (dropFrom != long.MaxValue)
            {
                Volatile.Read(ref mappings)?.DropPages(dropFrom, long.MaxValue - dropFrom, privateCopiesToo: true);
            }
        }
    }

    protected override void FillAttributesLocked(ref InodeAttributes attributes)
    {
        attributes.Size = size;
        attributes.Blocks = pages.Count * (PageSize / 512);
    }

    /// <summary>Reads at <paramref name="offset"/>; holes read as zeros.</summary>
    internal long Read(Span<byte> buffer, long offset, bool updateAccessTime)
    {
        if (offset < 0)
        {
            throw ErrnoException.Of(Errno.EINVAL);
        }

        if (buffer.Length == 0)
        {
            return 0;
        }

        lock (Lock)
        {
            if (offset >= size)
            {
                return 0;
            }

            int count = (int)Math.Min(buffer.Length, size - offset);
            int done = 0;
            while (done < count)
            {
                long position = offset + done;
                int inPage = (int)(position & (PageSize - 1));
                int chunk = Math.Min(PageSize - inPage, count - done);
                long page = pages.Get(position >> PageShift);
                var target = buffer.Slice(done, chunk);
                if (page < 0)
                {
                    target.Clear();
                }
                else
                {
                    Fs.Memory.GetSpan(page + inPage, chunk).CopyTo(target);
                }

                done += chunk;
            }

            if (updateAccessTime)
            {
                TouchAccessLocked();
            }

            return count;
        }
    }

    /// <summary>
    /// Writes at <paramref name="offset"/> (at the end, atomically, when <paramref name="append"/>),
    /// allocating pages for holes. A write that meets the size limit stops short; one that can
    /// write nothing fails with ENOSPC. EFBIG at the maximum file size.
    /// </summary>
    internal long Write(ReadOnlySpan<byte> buffer, ref long offset, bool append)
    {
        if (!append && offset < 0)
        {
            throw ErrnoException.Of(Errno.EINVAL);
        }

        lock (Lock)
        {
            long position = append ? size : offset;
            if (buffer.Length == 0)
            {
                offset = position;
                return 0;
            }

            if ((seals & (SealWrite | SealFutureWrite)) != 0 || ((seals & SealGrow) != 0 && position + buffer.Length > size))
            {
                throw ErrnoException.Of(Errno.EPERM);
            }

            if (position >= TmpfsFileSystem.MaxFileSize)
            {
                throw ErrnoException.Of(Errno.EFBIG);
            }

            long count = Math.Min(buffer.Length, TmpfsFileSystem.MaxFileSize - position);
            if (position > size)
            {
                ZeroTailLocked(size);
            }

            long done = 0;
            long lastIndex = (position + count - 1) >> PageShift;
            while (done < count)
            {
                long at = position + done;
                long index = at >> PageShift;
                int inPage = (int)(at & (PageSize - 1));
                int chunk = (int)Math.Min(PageSize - inPage, count - done);
                long page = pages.Get(index);
                if (page < 0)
                {
                    page = AllocateRunLocked(index, lastIndex);
                    if (page < 0)
                    {
                        if (done > 0)
                        {
                            break;
                        }

                        throw ErrnoException.Of(Errno.ENOSPC);
                    }
                }

                buffer.Slice((int)done, chunk).CopyTo(Fs.Memory.GetSpan(page + inPage, chunk));
                done += chunk;
            }

            if (position + done > size)
            {
                size = position + done;
            }

            ModifyTime = ChangeTime = Timespec.Now;
            offset = position + done;
            return done;
        }
    }

    /// <summary>
    /// fallocate: mode 0 and FALLOC_FL_KEEP_SIZE allocate the pages of the range (ENOSPC, with
    /// nothing kept, when the size limit has no room); FALLOC_FL_PUNCH_HOLE|KEEP_SIZE frees the
    /// whole pages of the range and zeroes the partial ones. Other modes give EOPNOTSUPP, as shmem.
    /// </summary>
    internal void Allocate(int mode, long offset, long length)
    {
        const int KeepSize = 1, PunchHole = 2;
        if ((mode & ~(KeepSize | PunchHole)) != 0)
        {
            throw ErrnoException.Of(Errno.EOPNOTSUPP);
        }

        long end = offset + length;
        if ((mode & PunchHole) != 0)
        {
            lock (shrinkGate)
            {
                long dropStart, dropEnd;
                lock (Lock)
                {
                    if ((seals & (SealWrite | SealFutureWrite)) != 0)
                    {
                        throw ErrnoException.Of(Errno.EPERM);
                    }

                    (dropStart, dropEnd) = PunchLocked(offset, Math.Min(end, size));
                    ModifyTime = ChangeTime = Timespec.Now;
                }

                // The freed pages leave every mapping; private copies stay (Linux unmaps without even_cows).
                if (dropEnd > dropStart)
                {
                    Volatile.Read(ref mappings)?.DropPages(dropStart, dropEnd - dropStart, privateCopiesToo: false);
                }
            }

            return;
        }

        lock (Lock)
        {
            if (end > size && (seals & SealGrow) != 0)
            {
                throw ErrnoException.Of(Errno.EPERM);
            }

            long firstIndex = offset >> PageShift;
            long lastIndex = (end - 1) >> PageShift;
            var added = new List<long>();
            for (long index = firstIndex; index <= lastIndex; index++)
            {
                if (pages.Get(index) >= 0)
                {
                    continue;
                }

                long run = 1;
                while (index + run <= lastIndex && run < 512 && pages.Get(index + run) < 0)
                {
                    run++;
                }

                if (AllocateRunLocked(index, lastIndex) < 0)
                {
                    // As shmem: a failed allocation keeps none of the pages it added.
                    var freed = new List<long>();
                    foreach (long i in added)
                    {
                        freed.Add(pages.Remove(i));
                    }

                    Fs.FreePages(freed);
                    throw ErrnoException.Of(Errno.ENOSPC);
                }

                // The run's holes now filled were added by this call.
                long k = 0;
                while (k < run && pages.Get(index + k) >= 0)
                {
                    added.Add(index + k);
                    k++;
                }

                index += k - 1;
            }

            if ((mode & KeepSize) == 0 && end > size)
            {
                ZeroTailLocked(size);
                size = end;
            }

            ChangeTime = Timespec.Now;
        }
    }

    // Frees the whole pages in [start, end) and zeroes the partial pages at its edges; returns the
    // file range of the freed pages.
    private (long Start, long End) PunchLocked(long start, long end)
    {
        if (start >= end)
        {
            return (0, 0);
        }

        long firstWhole = PagesFor(start);
        long endWhole = end >> PageShift;
        ZeroLocked(start, Math.Min(end, firstWhole << PageShift));
        if (endWhole > firstWhole)
        {
            var freed = new List<long>();
            for (long index = firstWhole; index < endWhole; index++)
            {
                long page = pages.Remove(index);
                if (page >= 0)
                {
                    freed.Add(page);
                }
            }

            Fs.FreePages(freed);
            ZeroLocked(Math.Max(start, endWhole << PageShift), end);
            return (firstWhole << PageShift, endWhole << PageShift);
        }

        return (0, 0);
    }

    private void ZeroLocked(long start, long end)
    {
        while (start < end)
        {
            int inPage = (int)(start & (PageSize - 1));
            int chunk = (int)Math.Min(PageSize - inPage, end - start);
            long page = pages.Get(start >> PageShift);
            if (page >= 0)
            {
                Fs.Memory.GetSpan(page + inPage, chunk).Clear();
            }

            start += chunk;
        }
    }

    /// <summary>
    /// Allocates pages for the hole at <paramref name="index"/> and the holes right after it, up to
    /// <paramref name="lastIndex"/>, as one memory-file range. Returns the first page's offset, or
    /// -1 when the size limit (or the sandbox's memory) has no room.
    /// </summary>
    private long AllocateRunLocked(long index, long lastIndex)
    {
        long run = 1;
        while (index + run <= lastIndex && run < 512 && pages.Get(index + run) < 0)
        {
            run++;
        }

        long granted = Fs.ReservePages(run);
        if (granted == 0)
        {
            return -1;
        }

        long first;
        try
        {
            first = Fs.Memory.Allocate(granted * PageSize);
        }
        catch (ErrnoException)
        {
            Fs.UnreservePages(granted);
            return -1;
        }

        for (long i = 0; i < granted; i++)
        {
            pages.Set(index + i, first + i * PageSize);
        }

        return first;
    }

    /// <summary>Zeroes the last page from <paramref name="from"/> to its end (bytes a mapping may have written past the end).</summary>
    private void ZeroTailLocked(long from)
    {
        int inPage = (int)(from & (PageSize - 1));
        if (inPage == 0)
        {
            return;
        }

        long page = pages.Get(from >> PageShift);
        if (page >= 0)
        {
            Fs.Memory.GetSpan(page + inPage, PageSize - inPage).Clear();
        }
    }

    private void TruncateLocked(long newSize)
    {
        if (newSize < 0)
        {
            throw ErrnoException.Of(Errno.EINVAL);
        }

        if (newSize > TmpfsFileSystem.MaxFileSize)
        {
            throw ErrnoException.Of(Errno.EFBIG);
        }

        if (newSize > size)
        {
            ZeroTailLocked(size);
        }
        else if (newSize < size)
        {
            // Drop whole pages past the new end and zero the rest of the new last page.
            long firstDropped = PagesFor(newSize);
            List<long> freed = [];
            pages.RemoveFrom(firstDropped, freed);
            Fs.FreePages(freed);
            ZeroTailLocked(newSize);
        }

        size = newSize;
    }

    /// <inheritdoc/>
    public long Size
    {
        get
        {
            lock (Lock)
            {
                return size;
            }
        }
    }

    /// <inheritdoc/>
    public void GetPages(long fileOffset, Span<long> pageOffsets)
    {
        if (fileOffset < 0 || (fileOffset & (PageSize - 1)) != 0)
        {
            throw ErrnoException.Of(Errno.EINVAL);
        }

        lock (Lock)
        {
            long firstIndex = fileOffset >> PageShift;
            long endIndex = PagesFor(size);
            int filled = 0;
            try
            {
                for (; filled < pageOffsets.Length; filled++)
                {
                    long index = firstIndex + filled;
                    long page;
                    if (index < endIndex)
                    {
                        page = pages.Get(index);
                        if (page < 0)
                        {
                            page = AllocateRunLocked(index, index);
                            if (page < 0)
                            {
                                throw ErrnoException.Of(Errno.ENOSPC);
                            }
                        }

                        Fs.Memory.IncRef(page, PageSize);
                    }
                    else
                    {
                        // Past the end: a zero page that belongs to the caller alone.
                        page = Fs.Memory.Allocate(PageSize);
                    }

                    pageOffsets[filled] = page;
                }
            }
            catch
            {
                for (int i = 0; i < filled; i++)
                {
                    Fs.Memory.DecRef(pageOffsets[i], PageSize);
                }

                throw;
            }
        }
    }

    /// <inheritdoc/>
    public void PagesWritten(long fileOffset, long length) => TouchModify();

    /// <inheritdoc/>
    public MappingSet Mappings => LazyInitializer.EnsureInitialized(ref mappings, () => new MappingSet(this));

    /// <summary>A description of the file was closed.</summary>
    internal void CloseOne()
    {
        lock (Lock)
        {
            openCount--;
            if (openCount == 0 && (Links == 0 || Fs.IsReleased))
            {
                FreeAllLocked();
                if (Links == 0 && Linkable)
                {
                    // An unnamed file closed without ever being linked: it is gone.
                    Linkable = false;
                    Fs.ReleaseInode();
                }
            }
        }
    }

    /// <summary>Frees the data if the file is not open (the filesystem is going away).</summary>
    internal void FreeIfUnused()
    {
        lock (Lock)
        {
            if (openCount == 0)
            {
                FreeAllLocked();
            }
        }
    }

    protected override void OnLastLinkGone() => FreeIfUnused();

    /// <summary>How many pages hold <paramref name="bytes"/> bytes (without overflowing near the maximum size).</summary>
    private static long PagesFor(long bytes) => (bytes >> PageShift) + ((bytes & (PageSize - 1)) != 0 ? 1 : 0);

    private void FreeAllLocked()
    {
        List<long> freed = [];
        pages.RemoveFrom(0, freed);
        Fs.FreePages(freed);
        size = 0;
    }
}

/// <summary>An open regular file of a tmpfs.</summary>
internal sealed class TmpfsFileDescription(TmpfsRegularFile file, OpenFlags flags) : IFileOperations
{
    private int released;

    /// <summary>The file (seals are kept there).</summary>
    public TmpfsRegularFile File => file;

    public IInode? Inode => file;

    public IMappable? Mappable => file;

    public long Read(Span<byte> buffer, ref long offset)
    {
        if (!flags.CanRead())
        {
            throw ErrnoException.Of(Errno.EBADF);
        }

        long count = file.Read(buffer, offset, (flags & OpenFlags.NoAccessTime) == 0);
        offset += count;
        return count;
    }

    public long Write(ReadOnlySpan<byte> buffer, ref long offset, bool append)
    {
        if (!flags.CanWrite())
        {
            throw ErrnoException.Of(Errno.EBADF);
        }

        return file.Write(buffer, ref offset, append);
    }

    public void Allocate(int mode, long offset, long length) => file.Allocate(mode, offset, length);

    public void Release()
    {
        if (Interlocked.Exchange(ref released, 1) == 0)
        {
            file.CloseOne();
        }
    }
}
