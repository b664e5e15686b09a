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

    internal GoferInode(GoferFileSystem fs, ulong node, in WireAttributes attributes)
    {
        this.fs = fs;
        Node = node;
        Dev = attributes.Dev;
        Ino = attributes.Ino;
        Type = (FileMode)(attributes.Type);
        this.attributes = attributes;
        validUntil = ExpiryFromNow();
    }

    /// <summary>Releases the Gofer's node once the inode is unreachable (without blocking: the release is queued).</summary>
    ~GoferInode()
    {
        fs.Connection.NodeDropped();
        fs.Connection.QueueRelease(new ReleasedNode(fs, Node, Dev, Ino, pageCache));
    }

    /// <inheritdoc/>
    public IFileSystem FileSystem => fs;

    /// <summary>The host inode number (also <c>st_ino</c>).</summary>
    public ulong Ino { get; }

    /// <summary>The file type.</summary>
    public FileMode Type { get; }

    internal ulong Node { get; }

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
                writable.Truncate(update.Size);
                Volatile.Read(ref pageCache)?.Truncated(update.Size);
            }

            InvalidateAttributes();
            return;
        }

        var mask = (WireSetAttr)(uint)update.Mask;
        int status = Connection.SetAttr(
            Node, mask, (uint)(update.Mode & FileMode.PermissionMask), update.Uid, update.Gid, update.Size,
            update.AccessTime, update.ModifyTime, out var fresh);
        if (status != 0)
        {
            throw ErrnoException.Of((Errno)status);
        }

        if ((update.Mask & AttributeMask.Size) != 0)
        {
            Volatile.Read(ref pageCache)?.Truncated(update.Size);
        }

        Refresh(fresh);
    }

    internal bool IsSameFile(in WireAttributes other) =>
        other.Type == (uint)Type && other.BtimeSec == attributes.BtimeSec && other.BtimeNsec == attributes.BtimeNsec;

    internal void Refresh(in WireAttributes fresh)
    {
        lock (gate)
        {
            attributes = fresh;
            validUntil = ExpiryFromNow();
        }
    }

    internal void InvalidateAttributes()
    {
        lock (gate)
        {
            validUntil = 0;
        }
    }

    private long ExpiryFromNow()
    {
        var timeout = fs.Options.AttributeTimeout;
        if (timeout == Timeout.InfiniteTimeSpan)
        {
            return long.MaxValue;
        }

        return Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
    }

    // ---- Directories --------------------------------------------------------------------

    /// <inheritdoc/>
    public IInode? Lookup(string name)
    {
        CheckDirectory();
        CheckName(name);
        int status = Connection.Walk(Node, name, out var reply);
        return status switch
        {
            0 => fs.Intern(reply),
            (int)Errno.ENOENT => null,
            // A host mount point: the gofer does not cross mounts, so it shows as an empty directory.
            (int)Errno.EXDEV => new GoferMountPointInode(fs, MountPointIno(name)),
            _ => throw ErrnoException.Of((Errno)status),
        };
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
            batch.Clear();
            int status = Connection.ReadDir(Node, hostCookie, batch);
            if (status != 0)
            {
                throw ErrnoException.Of((Errno)status);
            }

            if (batch.Count == 0)
            {
                yield break;
            }

            foreach (var entry in batch)
            {
                yield return new DirectoryEntry(entry.Name, entry.Ino, (FileMode)((uint)entry.Type << 12), ToCookie(entry.NextHostCookie));
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
        int status = Connection.Open(Node, write ? Host.O_RDWR : Host.O_RDONLY, out int fd, out var fresh);
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
