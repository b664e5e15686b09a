using AppKernel.Memory;
using AppKernel.Vfs;
using FileMode = AppKernel.Vfs.FileMode;

namespace AppKernel.Sentry.Fs.Tmpfs;

/// <summary>The <c>tmpfs</c> filesystem type: each mount is a new, empty <see cref="TmpfsFileSystem"/>.</summary>
public sealed class TmpfsFileSystemType : IFileSystemType
{
    /// <inheritdoc/>
    public string Name => "tmpfs";

    /// <inheritdoc/>
    public IFileSystem Mount(FileSystemMountContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        return new TmpfsFileSystem(context.MemoryFile, TmpfsOptions.Parse(context.Data));
    }
}

/// <summary>
/// One tmpfs instance: files, directories, symlinks and special nodes kept in memory, file data
/// in pages of the sandbox's <see cref="IMemoryFile"/>. Thread-safe: one lock guards the
/// namespace (directory contents, renames) and each inode has its own lock for its data and
/// attributes (taken after the namespace lock, never before).
/// </summary>
public sealed class TmpfsFileSystem : IFileSystem
{
    /// <summary>TMPFS_MAGIC, what statfs reports as <c>f_type</c>.</summary>
    public const long Magic = 0x01021994;

    /// <summary>The largest file size (MAX_LFS_FILESIZE on 64-bit Linux); writes and truncates past it fail with EFBIG.</summary>
    public const long MaxFileSize = long.MaxValue;

    internal const int PageSize = 4096;
    internal const int PageShift = 12;

    private readonly long pageLimit;
    private readonly long inodeLimit;
    private readonly TmpfsDirectory root;
    private long nextIno;
    private long pagesUsed;
    private long inodesUsed;
    private int released;

    /// <summary>Creates an empty instance.</summary>
    /// <param name="memoryFile">Where file data lives.</param>
    /// <param name="options">Limits and the root directory's mode and owner; Linux's defaults when null.</param>
    public TmpfsFileSystem(IMemoryFile memoryFile, TmpfsOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(memoryFile);
        if (memoryFile.PageSize != PageSize)
        {
            throw new ArgumentException("tmpfs needs 4096-byte pages", nameof(memoryFile));
        }

        options ??= TmpfsOptions.Default();
        Memory = memoryFile;
        pageLimit = options.SizeBytes / PageSize;
        inodeLimit = options.MaxInodes;
        ReserveInode();
        root = new TmpfsDirectory(this, FileMode.Directory | (options.RootMode & FileMode.PermissionMask), new FileOwner(options.RootUid, options.RootGid), parent: null);
    }

    /// <inheritdoc/>
    public string TypeName => "tmpfs";

    /// <inheritdoc/>
    public IInode Root => root;

    /// <summary>Bytes of file data held.</summary>
    public long UsedBytes => Interlocked.Read(ref pagesUsed) * PageSize;

    /// <summary>The namespace lock: directory contents, link counts and renames change under it.</summary>
    internal object Gate { get; } = new();

    internal IMemoryFile Memory { get; }

    internal bool IsReleased => Volatile.Read(ref released) != 0;

    /// <inheritdoc/>
    public FileSystemStatistics GetStatistics()
    {
        long used = Interlocked.Read(ref pagesUsed);
        long inodes = Interlocked.Read(ref inodesUsed);
        long blocks = pageLimit, free = pageLimit > 0 ? Math.Max(0, pageLimit - used) : 0;
        long files = inodeLimit, freeFiles = inodeLimit > 0 ? Math.Max(0, inodeLimit - inodes) : 0;
        return new FileSystemStatistics(Magic, PageSize, blocks, free, free, files, freeFiles, FsNames.NameMax);
    }

    /// <summary>
    /// The last mount is gone: file data is freed, except that of files still open, which is
    /// freed when they are closed.
    /// </summary>
    public void Release()
    {
        if (Interlocked.Exchange(ref released, 1) != 0)
        {
            return;
        }

        List<TmpfsRegularFile> files = [];
        lock (Gate)
        {
            root.CollectFiles(files);
        }

        foreach (var file in files)
        {
            file.FreeIfUnused();
        }
    }

    /// <summary>A regular file with no name and no links (memfd_create): it lives while open or mapped.</summary>
    internal TmpfsRegularFile CreateAnonymousFile(FileMode mode, FileOwner owner)
    {
        ReserveInode();
        var file = new TmpfsRegularFile(this, FileMode.Regular | (mode & FileMode.PermissionMask), owner);
        file.Links = 0;
        return file;
    }

    internal ulong NextIno() => (ulong)Interlocked.Increment(ref nextIno);

    /// <summary>Counts a new inode; ENOSPC past nr_inodes.</summary>
    internal void ReserveInode()
    {
        long count = Interlocked.Increment(ref inodesUsed);
        if (inodeLimit > 0 && count > inodeLimit)
        {
            Interlocked.Decrement(ref inodesUsed);
            throw ErrnoException.Of(Errno.ENOSPC);
        }
    }

    internal void ReleaseInode() => Interlocked.Decrement(ref inodesUsed);

    /// <summary>Reserves up to <paramref name="wanted"/> pages of the size limit; returns how many were granted.</summary>
    internal long ReservePages(long wanted)
    {
        while (true)
        {
            long used = Interlocked.Read(ref pagesUsed);
            long granted = pageLimit > 0 ? Math.Min(wanted, Math.Max(0, pageLimit - used)) : wanted;
            if (granted == 0)
            {
                return 0;
            }

            if (Interlocked.CompareExchange(ref pagesUsed, used + granted, used) == used)
            {
                return granted;
            }
        }
    }

    internal void UnreservePages(long count) => Interlocked.Add(ref pagesUsed, -count);

    /// <summary>Drops the file's reference on each page, in runs of contiguous offsets.</summary>
    internal void FreePages(List<long> offsets)
    {
        if (offsets.Count == 0)
        {
            return;
        }

        offsets.Sort();
        long runStart = offsets[0], runEnd = runStart + PageSize;
        for (int i = 1; i < offsets.Count; i++)
        {
            if (offsets[i] == runEnd)
            {
                runEnd += PageSize;
                continue;
            }

            Memory.DecRef(runStart, runEnd - runStart);
            runStart = offsets[i];
            runEnd = runStart + PageSize;
        }

        Memory.DecRef(runStart, runEnd - runStart);
        UnreservePages(offsets.Count);
    }
}
