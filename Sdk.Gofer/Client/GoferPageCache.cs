using AppKernel.Memory;
using AppKernel.Vfs;
using FileMode = AppKernel.Vfs.FileMode;

namespace AppKernel.Gofer.Client;

/// <summary>
/// The pages of one gofer file in the sandbox's memory file, for mmap. One per inode, shared by
/// every mapping, so shared mappings of the same file see each other's stores.
/// </summary>
/// <remarks>
/// The cache holds one reference on each page; every page handed out by
/// <see cref="GetPages"/> carries one more for the caller. Pages are filled from the host
/// descriptor with pread (missing runs in one call); bytes past the end of the file are zero.
/// One lock guards the page table and orders fills against writes: a fill (pread under the lock)
/// and the copy of a write into cached pages (after its pwrite, under the lock) can never
/// interleave so that a page misses the write.
/// </remarks>
internal sealed class GoferPageCache(GoferInode inode, IMemoryFile memoryFile) : IMappable
{
    /// <inheritdoc/>
    public bool IsReadOnly => inode.ReadOnlyFileSystem;

    private readonly object gate = new();
    private readonly Dictionary<long, long> pages = [];
    private readonly int pageSize = memoryFile.PageSize;
    private volatile int count;
    private bool dropped;
    private MappingSet? mappings;

    /// <inheritdoc/>
    public MappingSet Mappings => LazyInitializer.EnsureInitialized(ref mappings, () => new MappingSet(this));

    /// <summary>True when no page is cached (read and write then skip the cache entirely).</summary>
    public bool IsEmpty => count == 0;

    /// <summary>Pages cached (for tests and diagnostics).</summary>
    public int Count => count;

    /// <inheritdoc/>
    /// <remarks>One fstat of the Sentry's host descriptor (the host file's size now, not a cached one).</remarks>
    public long Size => inode.GetHandle(read: true, write: false).Stat().Size;

    /// <inheritdoc/>
    public void GetPages(long fileOffset, Span<long> pageOffsets)
    {
        if (fileOffset < 0 || fileOffset % pageSize != 0)
        {
            throw ErrnoException.Of(Errno.EINVAL);
        }

        if (pageOffsets.IsEmpty)
        {
            return;
        }

        var handle = inode.GetHandle(read: true, write: false);
        long first = fileOffset / pageSize;
        lock (gate)
        {
            if (dropped)
            {
                throw new ErrnoException(Errno.EIO, "the gofer filesystem was released");
            }

            for (int i = 0; i < pageOffsets.Length;)
            {
                if (pages.TryGetValue(first + i, out long cached))
                {
                    memoryFile.IncRef(cached, pageSize);
                    pageOffsets[i++] = cached;
                    continue;
                }

                // A run of missing pages: one allocation, one pread.
                int run = 1;
                while (i + run < pageOffsets.Length && run < 256 && !pages.ContainsKey(first + i + run))
                {
                    run++;
                }

                long length = (long)run * pageSize;
                long memory = memoryFile.Allocate(length);
                try
                {
                    handle.ReadAt(memoryFile.GetSpan(memory, (int)length), (first + i) * pageSize);
                }
                catch
                {
                    memoryFile.DecRef(memory, length);
                    throw;
                }

                memoryFile.IncRef(memory, length);
                for (int j = 0; j < run; j++)
                {
                    pages.Add(first + i + j, memory + (long)j * pageSize);
                    pageOffsets[i + j] = memory + (long)j * pageSize;
                }

                i += run;
                count = pages.Count;
            }
        }
    }

    /// <inheritdoc/>
    /// <remarks>
    /// Only pages whose contents differ from the host's are written (compared with a pread), so
    /// that unmapping a shared mapping nobody stored into neither needs a writable descriptor nor
    /// touches the file's modification time. Bytes past the end of the file are never written.
    /// </remarks>
    public void PagesWritten(long fileOffset, long length)
    {
        if (inode.ReadOnlyFileSystem || length <= 0 || IsEmpty)
        {
            return;
        }

        var reader = inode.GetHandle(read: true, write: false);
        HostFileHandle? writer = null;
        bool wrote = false;
        Span<byte> host = stackalloc byte[pageSize];
        lock (gate)
        {
            long size = reader.Stat().Size;
            long firstPage = Math.Max(0, fileOffset) / pageSize;
            long end = Math.Min(fileOffset + length, size);
            for (long page = firstPage; page * pageSize < end; page++)
            {
                if (!pages.TryGetValue(page, out long memory))
                {
                    continue;
                }

                long start = page * pageSize;
                int bytes = (int)Math.Min(pageSize, size - start);
                var cached = memoryFile.GetSpan(memory, bytes);
                long read = reader.ReadAt(host[..bytes], start);
                if (read == bytes && cached.SequenceEqual(host[..bytes]))
                {
                    continue;
                }

                writer ??= inode.GetHandle(read: false, write: true);
                writer.WriteAt(cached, start);
                wrote = true;
            }
        }

        if (wrote)
        {
            inode.InvalidateAttributes();
        }
    }

    /// <summary>read() while pages are cached: cached pages from memory, the others from the host.</summary>
    public long Read(HostFileHandle handle, Span<byte> buffer, long offset)
    {
        lock (gate)
        {
            long size = handle.Stat().Size;
            if (offset >= size || buffer.IsEmpty)
            {
                return 0;
            }

            long end = Math.Min(offset + buffer.Length, size);
            long position = offset;
            while (position < end)
            {
                long page = position / pageSize;
                int inPage = (int)(position - page * pageSize);
                if (pages.TryGetValue(page, out long memory))
                {
                    int n = (int)Math.Min(pageSize - inPage, end - position);
                    memoryFile.GetSpan(memory + inPage, n).CopyTo(buffer.Slice((int)(position - offset), n));
                    position += n;
                    continue;
                }

                // Up to the next cached page (or the end) from the host.
                long runEnd = Math.Min((page + 1) * pageSize, end);
                while (runEnd < end && !pages.ContainsKey(runEnd / pageSize))
                {
                    runEnd = Math.Min(runEnd + pageSize, end);
                }

                int want = (int)(runEnd - position);
                long got = handle.ReadAt(buffer.Slice((int)(position - offset), want), position);
                position += got;
                if (got < want)
                {
                    break; // The file shrank behind our back.
                }
            }

            return position - offset;
        }
    }

    /// <summary>Copies bytes just written to the host at <paramref name="offset"/> into the cached pages they cover.</summary>
    public void Written(ReadOnlySpan<byte> data, long offset)
    {
        if (IsEmpty || data.IsEmpty)
        {
            return;
        }

        lock (gate)
        {
            long end = offset + data.Length;
            for (long page = offset / pageSize; page * pageSize < end; page++)
            {
                if (!pages.TryGetValue(page, out long memory))
                {
                    continue;
                }

                long start = Math.Max(offset, page * pageSize);
                long stop = Math.Min(end, (page + 1) * pageSize);
                data.Slice((int)(start - offset), (int)(stop - start))
                    .CopyTo(memoryFile.GetSpan(memory + (start - page * pageSize), (int)(stop - start)));
            }
        }
    }

    /// <summary>The host zeroed <paramref name="length"/> bytes at <paramref name="offset"/> (a punched hole or zeroed range): so do the cached pages.</summary>
    public void Zeroed(long offset, long length)
    {
        if (IsEmpty || length <= 0)
        {
            return;
        }

        long end = offset > long.MaxValue - length ? long.MaxValue : offset + length;
        lock (gate)
        {
            foreach (var (page, memory) in pages)
            {
                long start = page * pageSize;
                long from = Math.Max(offset, start), to = Math.Min(end, start + pageSize);
                if (from < to)
                {
                    memoryFile.GetSpan(memory + (from - start), (int)(to - from)).Clear();
                }
            }
        }
    }

    /// <summary>
    /// The file was truncated to <paramref name="size"/> from <paramref name="previousSize"/> (-1 when
    /// not known): cached pages wholly past it leave the cache and the last page's bytes past it
    /// become zero (on growth, those past the old end too: a mapping may have stored there, and the
    /// host reads zeros); then every mapping drops the pages past the end (private copies too), as
    /// Linux's truncate_pagecache does, so touching them is SIGBUS and a later growth reads the
    /// host's zeros. Call with no lock an address space may wait for.
    /// </summary>
    public void Truncated(long size, long previousSize = -1)
    {
        size = Math.Max(size, 0);
        long zeroFrom = previousSize >= 0 ? Math.Min(size, previousSize) : size;
        long firstDropped = size / pageSize + (size % pageSize != 0 ? 1 : 0);
        if (!IsEmpty)
        {
            lock (gate)
            {
                var gone = new List<long>();
                foreach (var (page, memory) in pages)
                {
                    long start = page * pageSize;
                    if (page >= firstDropped)
                    {
                        gone.Add(page);
                    }
                    else if (start + pageSize > zeroFrom)
                    {
                        int from = (int)Math.Max(0, zeroFrom - start);
                        memoryFile.GetSpan(memory + from, pageSize - from).Clear();
                    }
                }

                foreach (long page in gone)
                {
                    pages.Remove(page, out long memory);
                    memoryFile.DecRef(memory, pageSize);
                }

                count = pages.Count;
            }
        }

        long dropFrom = firstDropped * pageSize;
        Volatile.Read(ref mappings)?.DropPages(dropFrom, long.MaxValue - dropFrom, privateCopiesToo: true);
    }

    /// <summary>Gives back the pages no mapping holds (only the cache's reference is left).</summary>
    /// <returns>Bytes released.</returns>
    public long Trim()
    {
        lock (gate)
        {
            var unused = new List<long>();
            foreach (var (page, memory) in pages)
            {
                if (memoryFile.RefCount(memory) <= 1)
                {
                    unused.Add(page);
                }
            }

            foreach (long page in unused)
            {
                pages.Remove(page, out long memory);
                memoryFile.DecRef(memory, pageSize);
            }

            count = pages.Count;
            return (long)unused.Count * pageSize;
        }
    }

    /// <summary>Drops the cache's reference on every page (the inode or the filesystem is gone).</summary>
    public void DropAll()
    {
        lock (gate)
        {
            if (dropped)
            {
                return;
            }

            dropped = true;
            foreach (long memory in pages.Values)
            {
                memoryFile.DecRef(memory, pageSize);
            }

            pages.Clear();
            count = 0;
        }
    }
}
