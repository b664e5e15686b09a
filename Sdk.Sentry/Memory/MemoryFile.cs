using AppKernel.Memory;
using AppKernel.Sentry.Native;

namespace AppKernel.Sentry.Memory;

/// <summary>
/// The sandbox's program memory: one host memfd, mapped once into the Sentry over its whole
/// possible size so that offset <c>x</c> is always at <see cref="BaseAddress"/> + x. The file is
/// sparse: the host backs a page only when it is touched, and a freed page's memory goes back
/// to the host at once (a hole is punched), so a reused page is zero again.
/// </summary>
public sealed unsafe class MemoryFile : IMemoryFile
{
    /// <summary>The largest file the Sentry maps (address space only; nothing is committed).</summary>
    public const long DefaultMaxSize = 1L << 40;

    private const int Page = 4096;
    private readonly object gate = new();
    private readonly long maxSize;
    private readonly long? limitBytes;
    private readonly PageRefCounts refCounts;
    private readonly FreeExtents free = new();
    private long highWater;
    private long allocated;
    private int fd;
    private nint baseAddress;

    /// <summary>Creates the memfd and maps it into the Sentry.</summary>
    /// <param name="limitBytes">Resident memory the sandbox may use; allocation past it fails with ENOMEM.</param>
    /// <param name="maxSize">The largest offset the file may reach.</param>
    public MemoryFile(long? limitBytes = null, long maxSize = DefaultMaxSize)
    {
        this.maxSize = maxSize;
        this.limitBytes = limitBytes;
        refCounts = new PageRefCounts(maxSize / Page);
        fd = LibC.MemfdCreate("appkernel-memory", LibC.MFD_CLOEXEC);
        if (fd < 0)
        {
            throw LibC.HostError("memfd_create");
        }

        if (LibC.Ftruncate(fd, maxSize) != 0)
        {
            var error = LibC.HostError("ftruncate of the memory file");
            LibC.Close(fd);
            throw error;
        }

        baseAddress = LibC.Mmap(0, (nuint)maxSize, LibC.PROT_READ | LibC.PROT_WRITE, LibC.MAP_SHARED | LibC.MAP_NORESERVE, fd, 0);
        if (baseAddress == -1)
        {
            var error = LibC.HostError("mmap of the memory file");
            LibC.Close(fd);
            throw error;
        }
    }

    /// <inheritdoc/>
    public int FileDescriptor => fd;

    /// <inheritdoc/>
    public int PageSize => Page;

    /// <inheritdoc/>
    public nint BaseAddress => baseAddress;

    /// <summary>The largest size the file can reach.</summary>
    public long MaxSize => maxSize;

    /// <inheritdoc/>
    public long AllocatedBytes => Volatile.Read(ref allocated);

    /// <inheritdoc/>
    public long ResidentBytes
    {
        get
        {
            LibC.HostStat stat;
            return LibC.Fstat(fd, &stat) == 0 ? stat.Blocks * 512 : 0;
        }
    }

    /// <summary>Called when an allocation fails because of the memory limit (the sandbox records it).</summary>
    public Action? LimitReached { get; set; }

    /// <inheritdoc/>
    public long Allocate(long length)
    {
        CheckRange(0, length);
        if (length == 0)
        {
            throw new ArgumentOutOfRangeException(nameof(length), "cannot allocate zero bytes");
        }

        if (limitBytes is { } limit && ResidentBytes + Page > limit)
        {
            LimitReached?.Invoke();
            throw ErrnoException.Of(Errno.ENOMEM);
        }

        lock (gate)
        {
            long offset = free.Take(length);
            if (offset < 0)
            {
                if (highWater + length > maxSize)
                {
                    throw ErrnoException.Of(Errno.ENOMEM);
                }

                offset = highWater;
                highWater += length;
            }

            for (long page = offset / Page, end = (offset + length) / Page; page < end; page++)
            {
                refCounts.Add(page, 1);
            }

            allocated += length;
            return offset;
        }
    }

    /// <inheritdoc/>
    public void IncRef(long offset, long length)
    {
        CheckRange(offset, length);
        lock (gate)
        {
            for (long page = offset / Page, end = (offset + length) / Page; page < end; page++)
            {
                if (refCounts.Add(page, 1) == 1)
                {
                    throw new InvalidOperationException($"memory file page at {page * Page:x} referenced after it was freed");
                }
            }
        }
    }

    /// <inheritdoc/>
    public void DecRef(long offset, long length)
    {
        CheckRange(offset, length);
        lock (gate)
        {
            // Free runs of pages that reach zero together: one hole punch per run.
            long runStart = -1;
            long end = (offset + length) / Page;
            for (long page = offset / Page; page < end; page++)
            {
                if (refCounts.Add(page, -1) == 0)
                {
                    if (runStart < 0)
                    {
                        runStart = page;
                    }
                }
                else if (runStart >= 0)
                {
                    Release(runStart * Page, (page - runStart) * Page);
                    runStart = -1;
                }
            }

            if (runStart >= 0)
            {
                Release(runStart * Page, (end - runStart) * Page);
            }
        }
    }

    /// <inheritdoc/>
    public int RefCount(long offset)
    {
        lock (gate)
        {
            return refCounts.Get(offset / Page);
        }
    }

    /// <inheritdoc/>
    public Span<byte> GetSpan(long offset, int length)
    {
        if (offset < 0 || length < 0 || offset + length > maxSize)
        {
            throw new ArgumentOutOfRangeException(nameof(offset), $"bad memory file range {offset:x}+{length:x}");
        }

        return new Span<byte>((void*)(baseAddress + (nint)offset), length);
    }

    /// <summary>A pointer to <paramref name="offset"/> in the Sentry's mapping.</summary>
    public byte* Pointer(long offset) => (byte*)(baseAddress + (nint)offset);

    /// <inheritdoc/>
    public void Dispose()
    {
        if (baseAddress != 0)
        {
            LibC.Munmap(baseAddress, (nuint)maxSize);
            baseAddress = 0;
        }

        if (fd >= 0)
        {
            LibC.Close(fd);
            fd = -1;
        }
    }

    private void Release(long offset, long length)
    {
        // Give the memory back to the host; the range reads as zeros when reused.
        LibC.Fallocate(fd, LibC.FALLOC_FL_PUNCH_HOLE | LibC.FALLOC_FL_KEEP_SIZE, offset, length);
        allocated -= length;
        free.Add(offset, length);
        while (free.TryTakeTail(highWater, out long tailStart))
        {
            highWater = tailStart;
        }
    }

    private void CheckRange(long offset, long length)
    {
        if (offset < 0 || length < 0 || offset % Page != 0 || length % Page != 0 || offset + length > maxSize)
        {
            throw new ArgumentOutOfRangeException(nameof(offset), $"bad memory file range {offset:x}+{length:x}");
        }
    }
}
