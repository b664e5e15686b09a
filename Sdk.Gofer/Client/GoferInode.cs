using System.Diagnostics;
using System.Text;
using AppKernel.Gofer.Client;
using AppKernel.Gofer.Native;
using AppKernel.Gofer.Protocol;
using AppKernel.Vfs;
using FileMode = AppKernel.Vfs.FileMode;

namespace AppKernel.Gofer;

/// <summary>
/// A host file, directory or symlink served by the Gofer.
/// </summary>
/// <remarks>
/// <para><b>Attributes</b> are cached: they come with every lookup and mutation answer, are
/// refreshed with fstat on the inode's own host descriptor when it has one (no round trip),
/// are marked stale by the inode's own writes and by mutations through this filesystem that
/// touch it, and otherwise expire after <see cref="GoferMountOptions.AttributeTimeout"/>.</para>
/// <para><b>Listings</b> are readdir-plus: a directory keeps its last listing (entries with
/// attributes) for the attribute timeout, while nothing changed through the filesystem since it
/// was asked for, and answers lookups from it (absent names too, when it is complete). An inode
/// made from a listing has no Gofer node until it needs one; it then walks by its listed name,
/// together with the open or listing that needed it, and is ESTALE if the name now leads to
/// another file.</para>
/// <para><b>Host descriptors</b> are fetched from the Gofer once per access kind (read-only,
/// read-write or write-only) and shared by every open of the inode (the VFS keeps offsets
/// and flags; I/O is positional), until the inode is collected.</para>
/// <para><b>Coherence of read/write and mmap</b>: a regular file's page cache
/// (<see cref="GoferPageCache"/>) exists only once the file is mapped. While it holds pages,
/// read() serves cached pages from memory (so it sees stores made through shared mappings)
/// and write() goes to the host with pwrite and is copied into the cached pages (so mappings
/// see it). Stores made through shared mappings reach the host when the memory manager calls
/// <see cref="IMappable.PagesWritten"/> (msync, munmap), clamped to the file's size (a
/// mapping never extends the file). Changes made on the host by others to a file the sandbox
/// has mapped are not noticed.</para>
/// </remarks>
public sealed class GoferInode : IInode
{
    private readonly GoferFileSystem fs;
    private readonly object gate = new();
    private readonly object writeGate = new();
    private WireAttributes attributes;
    private long validUntil;
    private HostFileHandle? readHandle;
    private HostFileHandle? writeHandle;
    private GoferPageCache? pageCache;
    private string? linkTarget;
    private long fetchedAt;

    // The Gofer node (an O_PATH descriptor there), 0 while the inode is known only from its
    // directory's listing: it is walked (from lazyParent by lazyName) when first needed.
    private ulong node;
    private GoferInode? lazyParent;
    private string? lazyName;

    // Directories: the last listing with its entries' attributes (readdir-plus), so that a lookup
    // that follows a listing needs no round trip; see TryListed.
    private Dictionary<string, WireDirent>? listing;
    private long listedAt;
    private bool listingComplete;
    private bool listingFromStart;
    private long endHostCookie = -1;
    private Dictionary<string, WeakReference<GoferInode>>? lazyChildren;
    private Dictionary<string, GoferMountPointInode>? mountPoints;

    internal GoferInode(GoferFileSystem fs, ulong node, in WireAttributes attributes)
        : this(fs, attributes, Stopwatch.GetTimestamp())
    {
        this.node = node;
    }

    /// <summary>An inode known from <paramref name="parent"/>'s listing (as <paramref name="name"/>, at <paramref name="listed"/>), not walked yet.</summary>
    internal GoferInode(GoferFileSystem fs, GoferInode parent, string name, in WireAttributes attributes, long listed)
        : this(fs, attributes, listed)
    {
        lazyParent = parent;
        lazyName = name;
    }

    private GoferInode(GoferFileSystem fs, in WireAttributes attributes, long fetched)
    {
        this.fs = fs;
        Dev = attributes.Dev;
        Ino = attributes.Ino;
        Type = (FileMode)(attributes.Type);
        this.attributes = attributes;
        fetchedAt = fetched;
        validUntil = ExpiryFrom(fetched);
    }

    /// <summary>Releases the Gofer's node once the inode is unreachable (without blocking: the release is queued).</summary>
    ~GoferInode()
    {
        ulong held = node;
        if (held != 0)
        {
            fs.Connection.NodeDropped();
        }

        fs.Connection.QueueRelease(new ReleasedNode(fs, held, Dev, Ino, pageCache));
    }

    /// <inheritdoc/>
    public IFileSystem FileSystem => fs;

    /// <summary>The host inode number (also <c>st_ino</c>).</summary>
    public ulong Ino { get; }

    /// <summary>The file type.</summary>
    public FileMode Type { get; }

    /// <summary>The Gofer node, walked now if the inode was known only from a listing.</summary>
    internal ulong Node
    {
        get
        {
            ulong held = Volatile.Read(ref node);
            return held != 0 ? held : Resolve();
        }
    }

    /// <summary>True once the inode holds a Gofer node (false for one known only from a listing).</summary>
    internal bool HasNode => Volatile.Read(ref node) != 0;

    internal ulong Dev { get; }

    private GoferConnection Connection => fs.Connection;

    // ---- Attributes ---------------------------------------------------------------------

    /// <inheritdoc/>
    public InodeAttributes GetAttributes()
    {
        long now = Stopwatch.GetTimestamp();
        lock (gate)
        {
            if (now < validUntil)
            {
                return attributes.ToInodeAttributes();
            }
        }

        WireAttributes fresh;
        var handle = Volatile.Read(ref writeHandle) ?? Volatile.Read(ref readHandle);
        if (!HasNode)
        {
            Resolve(); // The walk answers fresh attributes.
            lock (gate)
            {
                return attributes.ToInodeAttributes();
            }
        }

        if (handle is not null)
        {
            fresh = WireAttributes.From(handle.Stat());
            lock (gate)
            {
                fresh.BtimeSec = attributes.BtimeSec;
                fresh.BtimeNsec = attributes.BtimeNsec;
            }
        }
        else
        {
            int status = Connection.GetAttr(Node, out fresh);
            if (status != 0)
            {
                throw ErrnoException.Of((Errno)status);
            }
        }

        Refresh(fresh);
        return fresh.ToInodeAttributes();
    }

    /// <inheritdoc/>
    public void SetAttributes(in AttributeUpdate update)
    {
        CheckWritable();

        // Truncation alone (what O_TRUNC does) needs no round trip when a writable descriptor is at hand.
        if (update.Mask == AttributeMask.Size && Volatile.Read(ref writeHandle) is { } writable)
        {
            if (update.Size < 0)
            {
                throw ErrnoException.Of(Errno.EINVAL);
            }

            lock (writeGate)
            {
                var cache = Volatile.Read(ref pageCache);
                long before = cache is { IsEmpty: false } ? writable.Stat().Size : -1;
                writable.Truncate(update.Size);
                cache?.Truncated(update.Size, before);
            }

            InvalidateAttributes();
            return;
        }

        var mask = (WireSetAttr)(uint)update.Mask;
        var mapped = (update.Mask & AttributeMask.Size) != 0 ? Volatile.Read(ref pageCache) : null;
        long previous = mapped is { IsEmpty: false } ? GetHandle(read: true, write: false).Stat().Size : -1;
        int status = Connection.SetAttr(
            Node, mask, (uint)(update.Mode & FileMode.PermissionMask), update.Uid, update.Gid, update.Size,
            update.AccessTime, update.ModifyTime, out var fresh);
        if (status != 0)
        {
            throw ErrnoException.Of((Errno)status);
        }

        if ((update.Mask & AttributeMask.Size) != 0)
        {
            Volatile.Read(ref pageCache)?.Truncated(update.Size, previous);
        }

        Refresh(fresh);
    }

    internal bool IsSameFile(in WireAttributes other) =>
        other.Type == (uint)Type && other.BtimeSec == attributes.BtimeSec && other.BtimeNsec == attributes.BtimeNsec;

    internal void Refresh(in WireAttributes fresh)
    {
        long now = Stopwatch.GetTimestamp();
        lock (gate)
        {
            attributes = fresh;
            fetchedAt = now;
            validUntil = ExpiryFrom(now);
        }
    }

    /// <summary>
    /// Takes attributes a directory listing gave at <paramref name="listed"/>, unless what the
    /// inode has is newer or this filesystem changed something since the listing was made.
    /// </summary>
    internal void RefreshFromListing(in WireAttributes listedAttributes, long listed)
    {
        if (listed <= fs.LastChange)
        {
            return;
        }

        lock (gate)
        {
            if (listed > fetchedAt)
            {
                attributes = listedAttributes;
                fetchedAt = listed;
                validUntil = ExpiryFrom(listed);
            }
        }
    }

    internal void InvalidateAttributes()
    {
        fs.Changed();
        lock (gate)
        {
            validUntil = 0;
            listing = null;
            endHostCookie = -1;
        }
    }

    private long ExpiryFrom(long timestamp)
    {
        var timeout = fs.Options.AttributeTimeout;
        if (timeout == Timeout.InfiniteTimeSpan)
        {
            return long.MaxValue;
        }

        return timestamp + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
    }

    // ---- Nodes of inodes known from a listing ---------------------------------------------

    /// <summary>Walks to the inode's node (it was known only from its directory's listing).</summary>
    private ulong Resolve()
    {
        GoferInode? parent;
        string? name;
        lock (gate)
        {
            if (node != 0)
            {
                return node;
            }

            parent = lazyParent;
            name = lazyName;
        }

        if (parent is null || name is null)
        {
            throw ErrnoException.Of(Errno.ESTALE);
        }

        int status = Connection.Walk(parent.Node, name, out var reply);
        if (status != 0)
        {
            // The name changed on the host since the listing: the object the sandbox holds is gone.
            throw new ErrnoException(status == (int)Errno.ENOENT ? Errno.ESTALE : (Errno)status, $"'{name}' changed on the host since its directory was listed");
        }

        return AdoptWalked(reply, name);
    }

    /// <summary>Makes <paramref name="reply"/> (a walk to this inode's name) its node: ESTALE when the name now names another file.</summary>
    private ulong AdoptWalked(in NodeReply reply, string name)
    {
        if (TryAdoptNode(reply))
        {
            return reply.Node;
        }

        Connection.QueueRelease(new ReleasedNode(null, reply.Node, 0, 0, null));
        ulong held = Volatile.Read(ref node);
        if (held != 0)
        {
            return held; // Another thread walked first.
        }

        throw new ErrnoException(Errno.ESTALE, $"'{name}' names another file on the host since its directory was listed");
    }

    /// <summary>Takes the node of a walk that reached this same file, if the inode has none yet.</summary>
    internal bool TryAdoptNode(in NodeReply reply)
    {
        var fresh = reply.Attributes;
        long now = Stopwatch.GetTimestamp();
        lock (gate)
        {
            if (node != 0 || fresh.Ino != Ino || fresh.Dev != Dev || !IsSameFile(fresh))
            {
                return false;
            }

            Volatile.Write(ref node, reply.Node);
            lazyParent = null;
            lazyName = null;
            attributes = fresh;
            fetchedAt = now;
            validUntil = ExpiryFrom(now);
        }

        Connection.NodeAdopted();
        return true;
    }

    /// <summary>The parent and name to walk for a node-less inode, or false when it has a node.</summary>
    private bool TryGetLazyName(out GoferInode parent, out string name)
    {
        lock (gate)
        {
            parent = lazyParent!;
            name = lazyName!;
            return node == 0 && parent is not null && name is not null;
        }
    }

    /// <summary>Before a mutation of <paramref name="name"/> in this directory: gives a child known only from the listing its node, while the name still leads to it.</summary>
    private void ResolveListedChild(string name)
    {
        GoferInode? child = null;
        lock (gate)
        {
            if (lazyChildren is not null && lazyChildren.Remove(name, out var weak))
            {
                weak.TryGetTarget(out child);
            }
        }

        if (child is not null && !child.HasNode)
        {
            try
            {
                child.Resolve();
            }
            catch (ErrnoException)
            {
                // Already gone on the host: the mutation will say so.
            }
        }
    }

    /// <summary>Remembers a child made from the listing (see <see cref="ResolveListedChild"/>).</summary>
    internal void AddListedChild(string name, GoferInode child)
    {
        lock (gate)
        {
            lazyChildren ??= new Dictionary<string, WeakReference<GoferInode>>(StringComparer.Ordinal);
            if (lazyChildren.Count >= 4096)
            {
                foreach (var (key, weak) in lazyChildren)
                {
                    if (!weak.TryGetTarget(out var alive) || alive.HasNode)
                    {
                        lazyChildren.Remove(key);
                    }
                }
            }

            lazyChildren[name] = new WeakReference<GoferInode>(child);
        }
    }

    /// <summary>
    /// What the directory's last listing says of <paramref name="name"/>, while it is fresh (within
    /// the attribute timeout, and nothing changed through this filesystem since): its entry with
    /// attributes, or that it is absent (the listing was complete). False when the listing cannot tell.
    /// </summary>
    private bool TryListed(string name, out WireDirent entry, out long listed, out bool absent)
    {
        entry = default;
        absent = false;
        long now = Stopwatch.GetTimestamp();
        lock (gate)
        {
            listed = listedAt;
            if (listing is null)
            {
                return false;
            }

            if (now >= ExpiryFrom(listedAt) || listedAt <= fs.LastChange)
            {
                listing = null;
                endHostCookie = -1;
                return false;
            }

            if (listing.TryGetValue(name, out entry))
            {
                return entry.HasAttributes;
            }

            absent = listingComplete;
            return absent;
        }
    }

    /// <summary>Records a batch of the listing (from host cookie <paramref name="from"/>, requested at <paramref name="stamp"/>).</summary>
    private void RecordListing(long from, List<WireDirent> batch, bool end, long stamp)
    {
        long now = Stopwatch.GetTimestamp();
        lock (gate)
        {
            if (from == 0 || listing is null || now >= ExpiryFrom(listedAt) || listedAt <= fs.LastChange)
            {
                listing = new Dictionary<string, WireDirent>(batch.Count, StringComparer.Ordinal);
                listedAt = stamp;
                listingFromStart = from == 0;
                listingComplete = false;
                endHostCookie = -1;
            }

            foreach (var entry in batch)
            {
                listing[entry.Name] = entry;
            }

            if (end)
            {
                listingComplete = listingFromStart;
                endHostCookie = batch.Count == 0 ? from : batch[^1].NextHostCookie;
            }
        }
    }

    /// <summary>True when <paramref name="hostCookie"/> is where the fresh listing found the end of the directory.</summary>
    private bool AtListedEnd(long hostCookie)
    {
        long now = Stopwatch.GetTimestamp();
        lock (gate)
        {
            return listing is not null && endHostCookie >= 0 && hostCookie == endHostCookie &&
                now < ExpiryFrom(listedAt) && listedAt > fs.LastChange;
        }
    }

    // ---- Directories --------------------------------------------------------------------

    /// <inheritdoc/>
    public IInode? Lookup(string name)
    {
        CheckDirectory();
        CheckName(name);
        if (TryListed(name, out var entry, out long listed, out bool absent))
        {
            return absent ? null : fs.InternListed(this, name, entry.Attributes, listed);
        }

        int status = Connection.Walk(Node, name, out var reply);
        return status switch
        {
            0 => fs.Intern(reply),
            (int)Errno.ENOENT => null,
            // A host mount point: the gofer does not cross mounts, so it shows as an empty directory.
            (int)Errno.EXDEV => MountPoint(name),
            _ => throw ErrnoException.Of((Errno)status),
        };
    }

    /// <summary>The stand-in for the host mount point <paramref name="name"/>: one object per name, so that the VFS keeps its dentry when it looks the name up again.</summary>
    private GoferMountPointInode MountPoint(string name)
    {
        ulong ino = MountPointIno(name);
        lock (gate)
        {
            mountPoints ??= new Dictionary<string, GoferMountPointInode>(StringComparer.Ordinal);
            if (!mountPoints.TryGetValue(name, out var inode))
            {
                inode = new GoferMountPointInode(fs, ino);
                mountPoints[name] = inode;
            }

            return inode;
        }
    }

    private ulong MountPointIno(string name) => GetAttributes().Ino ^ ((ulong)(uint)string.GetHashCode(name, StringComparison.Ordinal) << 20) | 1UL << 62;

    /// <inheritdoc/>
    public IEnumerable<DirectoryEntry> ReadDirectory(long offset)
    {
        CheckDirectory();
        return Enumerate(ToHostCookie(offset));
    }

    private IEnumerable<DirectoryEntry> Enumerate(long hostCookie)
    {
        var batch = new List<WireDirent>();
        while (true)
        {
            if (AtListedEnd(hostCookie))
            {
                yield break; // The listing found the end here a moment ago: no round trip to learn it again.
            }

            batch.Clear();
            long stamp = Stopwatch.GetTimestamp();
            bool end;
            int status;
            if (TryGetLazyName(out var parent, out var name))
            {
                // Not walked yet: walk and list in one round trip.
                status = Connection.WalkReadDir(parent.Node, name, hostCookie, withAttributes: true, batch, out var reply, out int listStatus, out end);
                if (status != 0)
                {
                    throw new ErrnoException(status == (int)Errno.ENOENT ? Errno.ESTALE : (Errno)status, $"'{name}' changed on the host since its directory was listed");
                }

                AdoptWalked(reply, name);
                status = listStatus;
            }
            else
            {
                status = Connection.ReadDir(Node, hostCookie, withAttributes: true, batch, out end);
            }

            if (status != 0)
            {
                throw ErrnoException.Of((Errno)status);
            }

            RecordListing(hostCookie, batch, end, stamp);
            foreach (var entry in batch)
            {
                yield return new DirectoryEntry(entry.Name, entry.Ino, (FileMode)((uint)entry.Type << 12), ToCookie(entry.NextHostCookie));
            }

            if (end || batch.Count == 0)
            {
                yield break;
            }

            long next = batch[^1].NextHostCookie;
            if (next == hostCookie)
            {
                yield break;
            }

            hostCookie = next;
        }
    }

    /// <summary>
    /// The cookie the VFS sees for a host directory offset: host + 2, so that 0 and 1 stay "." and "..".
    /// Host offsets that would overflow (ext4's end-of-directory mark) become <see cref="long.MaxValue"/>.
    /// </summary>
    internal static long ToCookie(long host) => host < 0 || host > long.MaxValue - 2 ? long.MaxValue : host + 2;

    /// <summary>The host directory offset for a VFS cookie (the inverse of <see cref="ToCookie"/>).</summary>
    internal static long ToHostCookie(long cookie) => cookie <= 2 ? 0 : cookie == long.MaxValue ? long.MaxValue : cookie - 2;

    /// <inheritdoc/>
    public IInode CreateNode(string name, FileMode mode, ulong device, FileOwner owner)
    {
        CheckMutableDirectory(name);
        var type = mode.Type();
        uint permissions = (uint)(mode & FileMode.PermissionMask);
        NodeReply reply;
        int status;
        if (type is FileMode.Regular or FileMode.None)
        {
            // Created open read-write: the descriptor becomes the inode's shared handle, so the
            // open that follows a creation costs no second round trip.
            status = Connection.Create(Node, name, permissions, Host.O_RDWR, owner.Uid, owner.Gid, out reply, out int fd);
            if (status == 0)
            {
                var inode = Created(reply);
                inode.AdoptHandle(new HostFileHandle(fd, readable: true, writable: true));
                return inode;
            }
        }
        else if (type is FileMode.Fifo or FileMode.Socket)
        {
            status = Connection.Mknod(Node, name, (uint)type | permissions, device, owner.Uid, owner.Gid, out reply);
        }
        else
        {
            throw new ErrnoException(Errno.EPERM, "device nodes cannot be created on a gofer filesystem");
        }

        if (status != 0)
        {
            throw ErrnoException.Of((Errno)status);
        }

        return Created(reply);
    }

    /// <inheritdoc/>
    public IInode CreateDirectory(string name, FileMode mode, FileOwner owner)
    {
        CheckMutableDirectory(name);
        int status = Connection.Mkdir(Node, name, (uint)(mode & FileMode.PermissionMask), owner.Uid, owner.Gid, out var reply);
        if (status != 0)
        {
            throw ErrnoException.Of((Errno)status);
        }

        return Created(reply);
    }

    /// <inheritdoc/>
    public IInode CreateSymlink(string name, string target, FileOwner owner)
    {
        CheckMutableDirectory(name);
        if (Encoding.UTF8.GetByteCount(target) > Wire.MaxPath)
        {
            throw ErrnoException.Of(Errno.ENAMETOOLONG);
        }

        int status = Connection.Symlink(Node, name, target, owner.Uid, owner.Gid, out var reply);
        if (status != 0)
        {
            throw ErrnoException.Of((Errno)status);
        }

        return Created(reply);
    }

    /// <inheritdoc/>
    public void Link(string name, IInode target)
    {
        CheckMutableDirectory(name);
        if (target is not GoferInode other || other.fs != fs)
        {
            throw ErrnoException.Of(Errno.EXDEV);
        }

        int status = Connection.Link(Node, name, other.Node, out var fresh);
        if (status != 0)
        {
            throw ErrnoException.Of((Errno)status);
        }

        other.Refresh(fresh);
        InvalidateAttributes();
    }

    /// <inheritdoc/>
    public void Unlink(string name) => Remove(name, directory: false);

    /// <inheritdoc/>
    public void RemoveDirectory(string name) => Remove(name, directory: true);

    private void Remove(string name, bool directory)
    {
        CheckMutableDirectory(name);
        ResolveListedChild(name);
        int status = Connection.Unlink(Node, name, directory, out ulong ino);
        if (status != 0)
        {
            throw ErrnoException.Of((Errno)status);
        }

        fs.Invalidate(Dev, ino);
        InvalidateAttributes();
    }

    /// <inheritdoc/>
    public void Rename(string oldName, IInode newParent, string newName, RenameFlags flags)
    {
        CheckMutableDirectory(oldName);
        CheckName(newName);
        if (newParent is not GoferInode other || other.fs != fs)
        {
            throw ErrnoException.Of(Errno.EXDEV);
        }

        if ((flags & ~(RenameFlags.NoReplace | RenameFlags.Exchange)) != 0)
        {
            throw ErrnoException.Of(Errno.EINVAL); // RENAME_WHITEOUT belongs to the overlay, not the host.
        }

        ResolveListedChild(oldName);
        other.ResolveListedChild(newName);
        int status = Connection.Rename(Node, oldName, other.Node, newName, (uint)flags, out ulong moved, out ulong replaced);
        if (status != 0)
        {
            throw ErrnoException.Of((Errno)status);
        }

        fs.Invalidate(Dev, moved);
        if (replaced != 0)
        {
            fs.Invalidate(Dev, replaced);
        }

        InvalidateAttributes();
        other.InvalidateAttributes();
    }

    private GoferInode Created(in NodeReply reply)
    {
        InvalidateAttributes(); // The directory's mtime, ctime and link count changed.
        return fs.Intern(reply);
    }

    // ---- Symlinks -------------------------------------------------------------------------

    /// <inheritdoc/>
    public string ReadLink()
    {
        if (Type != FileMode.Symlink)
        {
            throw ErrnoException.Of(Errno.EINVAL);
        }

        if (Volatile.Read(ref linkTarget) is { } cached)
        {
            return cached; // A symlink's target never changes.
        }

        int status = Connection.ReadLink(Node, out string target);
        if (status != 0)
        {
            throw ErrnoException.Of((Errno)status);
        }

        Volatile.Write(ref linkTarget, target);
        return target;
    }

    // ---- Opening ------------------------------------------------------------------------

    /// <inheritdoc/>
    public IFileOperations Open(OpenFlags flags)
    {
        if ((flags & OpenFlags.Path) != 0)
        {
            return new GoferPathFile(this);
        }

        bool write = flags.CanWrite();
        if (write && fs.ReadOnly)
        {
            throw ErrnoException.Of(Errno.EROFS);
        }

        switch (Type)
        {
            case FileMode.Directory:
                if (write)
                {
                    throw ErrnoException.Of(Errno.EISDIR);
                }

                return new GoferDirectoryFile(this);
            case FileMode.Regular:
                return new GoferRegularFile(this, GetHandle(flags.CanRead(), write), flags);
            case FileMode.Symlink:
                throw ErrnoException.Of(Errno.ELOOP);
            case FileMode.Fifo:
                throw new ErrnoException(Errno.ENXIO, "host FIFOs are not opened through the gofer; the VFS serves named pipes itself");
            case FileMode.Socket:
                throw ErrnoException.Of(Errno.ENXIO);
            default:
                throw new ErrnoException(Errno.EACCES, "host device files are not served by the gofer");
        }
    }

    /// <summary>A host descriptor allowing <paramref name="read"/> and <paramref name="write"/>, fetched once and shared.</summary>
    internal HostFileHandle GetHandle(bool read, bool write)
    {
        var existing = write ? Volatile.Read(ref writeHandle) : Volatile.Read(ref readHandle) ?? Volatile.Read(ref writeHandle);
        if (existing is not null && (!read || existing.Readable) && (!write || existing.Writable))
        {
            return existing;
        }

        bool readable = !write || read;
        int status;
        int fd;
        WireAttributes fresh;
        if (TryGetLazyName(out var parent, out var name))
        {
            // Not walked yet: walk and open in one round trip.
            int walked = Connection.WalkOpen(parent.Node, name, write ? Host.O_RDWR : Host.O_RDONLY, out var reply, out status, out fd, out fresh);
            if (walked != 0)
            {
                throw new ErrnoException(walked == (int)Errno.ENOENT ? Errno.ESTALE : (Errno)walked, $"'{name}' changed on the host since its directory was listed");
            }

            try
            {
                AdoptWalked(reply, name);
            }
            catch
            {
                Host.CloseQuietly(fd);
                throw;
            }
        }
        else
        {
            status = Connection.Open(Node, write ? Host.O_RDWR : Host.O_RDONLY, out fd, out fresh);
        }

        if (status == (int)Errno.EACCES && write && !read)
        {
            readable = false; // Write-only files (mode 0200) can still be written.
            status = Connection.Open(Node, Host.O_WRONLY, out fd, out fresh);
        }

        if (status != 0)
        {
            throw ErrnoException.Of((Errno)status);
        }

        var handle = new HostFileHandle(fd, readable, write);
        Refresh(fresh);
        return AdoptHandle(handle);
    }

    /// <summary>Keeps <paramref name="handle"/> as the shared handle of its kind unless a better one is already there.</summary>
    private HostFileHandle AdoptHandle(HostFileHandle handle)
    {
        lock (gate)
        {
            if (handle.Writable)
            {
                if (writeHandle is null || (!writeHandle.Readable && handle.Readable))
                {
                    writeHandle = handle; // A replaced handle closes when its last user lets go.
                    return handle;
                }

                handle.Dispose();
                return writeHandle;
            }

            if (readHandle is null)
            {
                readHandle = handle;
                return handle;
            }

            handle.Dispose();
            return readHandle;
        }
    }

    /// <summary>The page cache, created on first use.</summary>
    internal GoferPageCache PageCache
    {
        get
        {
            var cache = Volatile.Read(ref pageCache);
            if (cache is not null)
            {
                return cache;
            }

            cache = new GoferPageCache(this, fs.MemoryFile);
            var winner = Interlocked.CompareExchange(ref pageCache, cache, null);
            if (winner is not null)
            {
                return winner;
            }

            fs.Register(cache);
            return cache;
        }
    }

    internal bool ReadOnlyFileSystem => fs.ReadOnly;

    internal bool FileSystemReleased => fs.IsReleased;

    /// <summary>Reads at <paramref name="offset"/>: through the page cache when the file has cached pages, else straight from the host.</summary>
    internal long ReadAt(HostFileHandle handle, Span<byte> buffer, long offset)
    {
        var cache = Volatile.Read(ref pageCache);
        if (cache is null || cache.IsEmpty)
        {
            return handle.ReadAt(buffer, offset);
        }

        return cache.Read(handle, buffer, offset);
    }

    /// <summary>Writes at <paramref name="offset"/> (at the end when <paramref name="append"/>) to the host, then into cached pages.</summary>
    internal long WriteAt(HostFileHandle handle, ReadOnlySpan<byte> buffer, ref long offset, bool append)
    {
        long written;
        lock (writeGate)
        {
            if (append)
            {
                offset = handle.Stat().Size;
            }

            if (offset < 0)
            {
                throw ErrnoException.Of(Errno.EINVAL);
            }

            written = handle.WriteAt(buffer, offset);
            Volatile.Read(ref pageCache)?.Written(buffer[..(int)written], offset);
            offset += written;
        }

        InvalidateAttributes();
        return written;
    }

    /// <summary>
    /// fallocate on the host descriptor: mode 0 and FALLOC_FL_KEEP_SIZE reserve space (and may
    /// extend the size); FALLOC_FL_PUNCH_HOLE|KEEP_SIZE and FALLOC_FL_ZERO_RANGE zero the range,
    /// in the host file and in cached pages. The host filesystem's own refusals (EOPNOTSUPP,
    /// ENOSPC, EFBIG) come back as they are.
    /// </summary>
    internal void AllocateAt(HostFileHandle handle, int mode, long offset, long length)
    {
        const int KeepSize = 1, PunchHole = 2, ZeroRange = 0x10;
        if ((mode & ~(KeepSize | PunchHole | ZeroRange)) != 0 || (mode & (PunchHole | ZeroRange)) == (PunchHole | ZeroRange))
        {
            throw ErrnoException.Of(Errno.EOPNOTSUPP);
        }

        CheckWritable();
        lock (writeGate)
        {
            handle.Allocate(mode, offset, length);
            if ((mode & (PunchHole | ZeroRange)) != 0)
            {
                Volatile.Read(ref pageCache)?.Zeroed(offset, length);
            }
        }

        InvalidateAttributes();
    }

    private void CheckDirectory()
    {
        if (Type != FileMode.Directory)
        {
            throw ErrnoException.Of(Errno.ENOTDIR);
        }
    }

    private void CheckMutableDirectory(string name)
    {
        CheckDirectory();
        CheckName(name);
        CheckWritable();
    }

    private void CheckWritable()
    {
        if (fs.ReadOnly)
        {
            throw ErrnoException.Of(Errno.EROFS);
        }
    }

    /// <summary>One path component: not empty, ".", "..", and without '/' or NUL (the Gofer checks again).</summary>
    private static void CheckName(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (name.Length == 0 || name == "." || name == ".." || name.Contains('/') || name.Contains('\0'))
        {
            throw new ErrnoException(Errno.EINVAL, $"'{name}' is not a single path component");
        }

        if (name.Length > Wire.MaxName / 3 && Encoding.UTF8.GetByteCount(name) > Wire.MaxName)
        {
            throw ErrnoException.Of(Errno.ENAMETOOLONG);
        }
    }
}
