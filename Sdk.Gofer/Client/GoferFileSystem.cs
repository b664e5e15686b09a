using System.Diagnostics;
using AppKernel.Gofer.Client;
using AppKernel.Gofer.Protocol;
using AppKernel.Memory;
using AppKernel.Vfs;
using FileMode = AppKernel.Vfs.FileMode;

namespace AppKernel.Gofer;

/// <summary>How a <see cref="GoferFileSystem"/> caches what the Gofer tells it.</summary>
public sealed class GoferMountOptions
{
    /// <summary>
    /// How long attributes fetched from the Gofer, directory listings, and names the VFS cached
    /// (found or absent) are trusted before being asked again (for changes made on the host
    /// behind the sandbox's back). Changes the sandbox makes through this filesystem are seen at
    /// once regardless. <see cref="Timeout.InfiniteTimeSpan"/> trusts forever.
    /// </summary>
    public TimeSpan AttributeTimeout { get; set; } = TimeSpan.FromSeconds(1);
}

/// <summary>
/// A host directory tree served by a Gofer, as a filesystem the Sentry's VFS can mount
/// (as the sandbox root, read-only under a tmpfs overlay, read-only, or read-write).
/// </summary>
/// <remarks>
/// <para>Inodes are the host's: <c>st_ino</c> is the host inode number, and one
/// <see cref="GoferInode"/> object stands for one host inode while it is in use (lookups of
/// the same file, by any name, return the same object), so its page cache is shared by every
/// mapping of the file.</para>
/// <para>File data never travels through the protocol: opening a regular file fetches a host
/// descriptor from the Gofer once per inode and access mode, and reads and writes are
/// pread/pwrite on it. See <see cref="GoferInode"/> for caching and coherence.</para>
/// </remarks>
public sealed class GoferFileSystem : IFileSystem
{
    /// <summary>The statfs magic number reported (V9FS_MAGIC, as gVisor reports for gofer mounts).</summary>
    public const long V9fsMagic = 0x01021997;

    private readonly object gate = new();
    private readonly Dictionary<(ulong Dev, ulong Ino), WeakReference<GoferInode>> inodes = [];
    private readonly List<WeakReference<GoferPageCache>> caches = [];
    private readonly GoferInode root;
    private volatile bool released;
    private long lastChange;

    /// <summary>Attaches to root <paramref name="rootIndex"/> of a running Gofer.</summary>
    /// <param name="connection">The Gofer (from <see cref="GoferLauncher"/>); several filesystems may share it.</param>
    /// <param name="rootIndex">Which of the Gofer's attach roots (the order given to the launcher).</param>
    /// <param name="memoryFile">The sandbox's memory file, which holds the page cache for mmap.</param>
    /// <param name="readOnly">Mount read-only: every mutation fails with EROFS (always so when the Gofer serves the root read-only).</param>
    /// <param name="options">Caching options, or null for the defaults.</param>
    /// <exception cref="GoferException">The Gofer failed to start, or the root cannot be attached.</exception>
    public GoferFileSystem(GoferConnection connection, int rootIndex, IMemoryFile memoryFile, bool readOnly, GoferMountOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(connection);
        ArgumentNullException.ThrowIfNull(memoryFile);
        Connection = connection;
        MemoryFile = memoryFile;
        Options = options ?? new GoferMountOptions();
        var roots = connection.Roots;
        if ((uint)rootIndex >= (uint)roots.Count)
        {
            throw new GoferException($"gofer attach root {rootIndex} does not exist (the gofer serves {roots.Count})");
        }

        RootIndex = rootIndex;
        ReadOnly = readOnly || roots[rootIndex].ReadOnly;
        int status = connection.Attach(rootIndex, out var reply);
        if (status != 0)
        {
            throw new GoferException($"cannot attach gofer root {rootIndex}: {(Errno)status}");
        }

        root = Intern(reply);
    }

    /// <inheritdoc/>
    public string TypeName => "9p";

    /// <inheritdoc/>
    public IInode Root => root;

    /// <summary>
    /// Names cached by the VFS (found and absent) are trusted for <see cref="GoferMountOptions.AttributeTimeout"/>,
    /// then looked up again, so that files created, removed or renamed on the host are seen.
    /// </summary>
    public TimeSpan LookupCacheTimeout => Options.AttributeTimeout;

    /// <summary>The Gofer connection.</summary>
    public GoferConnection Connection { get; }

    /// <summary>The attach root index.</summary>
    public int RootIndex { get; }

    /// <summary>True when mutations fail with EROFS.</summary>
    public bool ReadOnly { get; }

    /// <summary>The memory file holding the page cache.</summary>
    public IMemoryFile MemoryFile { get; }

    /// <summary>The caching options.</summary>
    public GoferMountOptions Options { get; }

    /// <inheritdoc/>
    public FileSystemStatistics GetStatistics()
    {
        int status = Connection.StatFs(root.Node, out var v);
        if (status != 0)
        {
            throw ErrnoException.Of((Errno)status);
        }

        return new FileSystemStatistics(V9fsMagic, v[1], v[2], v[3], v[4], v[5], v[6], v[7]);
    }

    /// <summary>
    /// Gives back page-cache pages no mapping uses any more (reference count 1: the cache's own).
    /// The Sentry may call it under memory pressure.
    /// </summary>
    /// <returns>The bytes released.</returns>
    public long TrimPageCache()
    {
        long freed = 0;
        foreach (var cache in LiveCaches())
        {
            freed += cache.Trim();
        }

        return freed;
    }

    /// <summary>Drops every page the filesystem caches (the last mount went away).</summary>
    public void Release()
    {
        released = true;
        foreach (var cache in LiveCaches())
        {
            cache.DropAll();
        }
    }

    /// <summary>
    /// The inode for a node the Gofer answered with: the live one for the same host inode when
    /// there is one (the new node is then released), else a new one.
    /// </summary>
    internal GoferInode Intern(in NodeReply reply)
    {
        var attributes = reply.Attributes;
        var key = (attributes.Dev, attributes.Ino);
        lock (gate)
        {
            if (inodes.TryGetValue(key, out var weak) && weak.TryGetTarget(out var existing) && existing.IsSameFile(attributes))
            {
                if (!existing.TryAdoptNode(reply))
                {
                    existing.Refresh(attributes);
                    Connection.QueueRelease(new ReleasedNode(null, reply.Node, 0, 0, null));
                }

                return existing;
            }

            var inode = new GoferInode(this, reply.Node, attributes);
            inodes[key] = new WeakReference<GoferInode>(inode);
            Connection.NodeAdopted();
            return inode;
        }
    }

    /// <summary>
    /// The inode for an entry of <paramref name="parent"/>'s listing (readdir-plus): the live one
    /// for the same host inode when there is one, else a new one that has no Gofer node until it
    /// needs one (it is walked then, by its name). No round trip either way.
    /// </summary>
    internal GoferInode InternListed(GoferInode parent, string name, in WireAttributes attributes, long listed)
    {
        var key = (attributes.Dev, attributes.Ino);
        GoferInode inode;
        lock (gate)
        {
            if (inodes.TryGetValue(key, out var weak) && weak.TryGetTarget(out var existing) && existing.IsSameFile(attributes))
            {
                existing.RefreshFromListing(attributes, listed);
                return existing;
            }

            inode = new GoferInode(this, parent, name, attributes, listed);
            inodes[key] = new WeakReference<GoferInode>(inode);
        }

        parent.AddListedChild(name, inode);
        return inode;
    }

    /// <summary>
    /// When this filesystem last changed something (any mutation or write through it, as a
    /// monotonic timestamp): listings made before it no longer stand in for lookups.
    /// </summary>
    internal long LastChange => Volatile.Read(ref lastChange);

    /// <summary>Records a change made through this filesystem (see <see cref="LastChange"/>).</summary>
    internal void Changed() => Volatile.Write(ref lastChange, Stopwatch.GetTimestamp());

    /// <summary>An inode was collected: forget its table entry and give back its pages.</summary>
    internal void Forget(in ReleasedNode item)
    {
        lock (gate)
        {
            if (inodes.TryGetValue((item.Dev, item.Ino), out var weak) && !weak.TryGetTarget(out _))
            {
                inodes.Remove((item.Dev, item.Ino));
            }
        }

        if (item.Pages is { } pages && !released)
        {
            pages.DropAll();
        }
    }

    /// <summary>Marks the cached attributes of the live inode for <paramref name="ino"/> stale.</summary>
    internal void Invalidate(ulong dev, ulong ino)
    {
        GoferInode? inode = null;
        lock (gate)
        {
            if (inodes.TryGetValue((dev, ino), out var weak))
            {
                weak.TryGetTarget(out inode);
            }
        }

        inode?.InvalidateAttributes();
    }

    internal void Register(GoferPageCache cache)
    {
        lock (gate)
        {
            caches.RemoveAll(w => !w.TryGetTarget(out _));
            caches.Add(new WeakReference<GoferPageCache>(cache));
        }
    }

    internal bool IsReleased => released;

    private List<GoferPageCache> LiveCaches()
    {
        var live = new List<GoferPageCache>();
        lock (gate)
        {
            foreach (var weak in caches)
            {
                if (weak.TryGetTarget(out var cache))
                {
                    live.Add(cache);
                }
            }
        }

        return live;
    }
}
