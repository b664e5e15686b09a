using AppKernel.Vfs;
using FileMode = AppKernel.Vfs.FileMode;

namespace AppKernel.Sentry.Fs.Tmpfs;

/// <summary>
/// A tmpfs directory. Each entry gets a cookie when it is added, from a counter that only grows,
/// and the listing is kept in cookie order: a getdents position is a cookie, so entries added or
/// removed during a listing never make it skip or repeat the others (new names appear at the end).
/// Directory contents are guarded by the filesystem's namespace lock.
/// </summary>
internal sealed class TmpfsDirectory : TmpfsInode, IInode
{
    /// <summary>Linux's tmpfs counts 20 bytes per entry in a directory's size.</summary>
    private const int BogoDirentSize = 20;

    private readonly Dictionary<string, Entry> byName = new(StringComparer.Ordinal);
    private readonly List<Entry> ordered = [];
    private long nextCookie = 2;
    private int removedInOrder;
    private bool deleted;
    private int countForSize;

    public TmpfsDirectory(TmpfsFileSystem fs, FileMode mode, FileOwner owner, TmpfsDirectory? parent)
        : base(fs, mode, owner, links: 2)
    {
        Parent = parent;
    }

    /// <summary>The directory holding this one (itself for the root); guarded by the namespace lock.</summary>
    internal TmpfsDirectory? Parent { get; private set; }

    internal int Count => byName.Count;

    protected override void FillAttributesLocked(ref InodeAttributes attributes) =>
        attributes.Size = (Volatile.Read(ref countForSize) + 2) * BogoDirentSize;

    public override IFileOperations Open(OpenFlags flags)
    {
        if (flags.CanWrite() || ((flags & OpenFlags.Truncate) != 0 && (flags & OpenFlags.Path) == 0))
        {
            throw ErrnoException.Of(Errno.EISDIR);
        }

        return new TmpfsDirectoryDescription(this);
    }

    public IInode? Lookup(string name)
    {
        if (FsNames.TooLong(name))
        {
            throw ErrnoException.Of(Errno.ENAMETOOLONG);
        }

        lock (Fs.Gate)
        {
            return byName.TryGetValue(name, out var entry) ? entry.Inode : null;
        }
    }

    public IEnumerable<DirectoryEntry> ReadDirectory(long offset)
    {
        lock (Lock)
        {
            TouchAccessLocked();
        }

        return Enumerate(Math.Max(offset, 2));
    }

    private IEnumerable<DirectoryEntry> Enumerate(long cookie)
    {
        while (true)
        {
            DirectoryEntry next;
            lock (Fs.Gate)
            {
                var entry = FindFromLocked(cookie);
                if (entry is null)
                {
                    yield break;
                }

                next = new DirectoryEntry(entry.Name, entry.Inode.Ino, entry.Inode.Type, entry.Cookie + 1);
            }

            cookie = next.NextOffset;
            yield return next;
        }
    }

    /// <summary>The first live entry whose cookie is at least <paramref name="cookie"/>.</summary>
    private Entry? FindFromLocked(long cookie)
    {
        int low = 0, high = ordered.Count;
        while (low < high)
        {
            int mid = (low + high) >>> 1;
            if (ordered[mid].Cookie < cookie)
            {
                low = mid + 1;
            }
            else
            {
                high = mid;
            }
        }

        for (int i = low; i < ordered.Count; i++)
        {
            if (!ordered[i].Removed)
            {
                return ordered[i];
            }
        }

        return null;
    }

    public IInode CreateNode(string name, FileMode mode, ulong device, FileOwner owner)
    {
        var type = mode.Type();
        if (type == FileMode.None)
        {
            type = FileMode.Regular;
        }

        if (type is not (FileMode.Regular or FileMode.Fifo or FileMode.CharDevice or FileMode.BlockDevice or FileMode.Socket))
        {
            throw ErrnoException.Of(Errno.EINVAL);
        }

        var permissions = mode & FileMode.PermissionMask;
        return Create(name, owner, (fs, newOwner) => type == FileMode.Regular
            ? new TmpfsRegularFile(fs, type | permissions, newOwner)
            : new TmpfsSpecialNode(fs, type | permissions, device, newOwner));
    }

    public IInode CreateDirectory(string name, FileMode mode, FileOwner owner)
    {
        var permissions = mode & FileMode.PermissionMask;
        return Create(name, owner, (fs, newOwner) =>
        {
            // A directory in a set-group-ID directory inherits the bit as well as the group.
            FileMode inherited;
            lock (Lock)
            {
                inherited = Mode & FileMode.SetGid;
            }

            return new TmpfsDirectory(fs, FileMode.Directory | permissions | inherited, newOwner, this);
        });
    }

    public IInode CreateSymlink(string name, string target, FileOwner owner)
    {
        if (target.Length == 0)
        {
            throw ErrnoException.Of(Errno.ENOENT);
        }

        if (System.Text.Encoding.UTF8.GetByteCount(target) >= TmpfsFileSystem.PageSize)
        {
            throw ErrnoException.Of(Errno.ENAMETOOLONG);
        }

        return Create(name, owner, (fs, newOwner) => new TmpfsSymlink(fs, target, newOwner));
    }

    /// <summary>
    /// Creates a regular file with no name (O_TMPFILE): it has no links, lives while open,
    /// and may be given a name later with <see cref="Link"/>.
    /// </summary>
    internal IInode CreateUnnamedFile(FileMode mode, FileOwner owner)
    {
        lock (Fs.Gate)
        {
            if (deleted)
            {
                throw ErrnoException.Of(Errno.ENOENT);
            }

            Fs.ReserveInode();
            var file = new TmpfsRegularFile(Fs, FileMode.Regular | (mode & FileMode.PermissionMask), owner with { Gid = InheritedGid(owner) });
            file.Links = 0;
            file.Linkable = true;
            return file;
        }
    }

    private TmpfsInode Create(string name, FileOwner owner, Func<TmpfsFileSystem, FileOwner, TmpfsInode> factory)
    {
        FsNames.CheckName(name);
        lock (Fs.Gate)
        {
            CheckNewNameLocked(name);
            Fs.ReserveInode();
            TmpfsInode inode;
            try
            {
                inode = factory(Fs, owner with { Gid = InheritedGid(owner) });
            }
            catch
            {
                Fs.ReleaseInode();
                throw;
            }

            AddLocked(name, inode);
            TouchModify();
            return inode;
        }
    }

    /// <summary>The group a new inode gets: the directory's own when it is set-group-ID.</summary>
    private int InheritedGid(FileOwner owner)
    {
        lock (Lock)
        {
            return (Mode & FileMode.SetGid) != 0 ? Gid : owner.Gid;
        }
    }

    private void CheckNewNameLocked(string name)
    {
        if (deleted)
        {
            throw ErrnoException.Of(Errno.ENOENT);
        }

        if (byName.ContainsKey(name))
        {
            throw ErrnoException.Of(Errno.EEXIST);
        }
    }

    public void Link(string name, IInode target)
    {
        if (target is not TmpfsInode inode || inode.Fs != Fs)
        {
            throw ErrnoException.Of(Errno.EXDEV);
        }

        if (inode.Type == FileMode.Directory)
        {
            throw ErrnoException.Of(Errno.EPERM);
        }

        FsNames.CheckName(name);
        lock (Fs.Gate)
        {
            CheckNewNameLocked(name);
            lock (inode.Lock)
            {
                if (inode.Links == 0)
                {
                    // Only an unnamed file may get its first name (it is already counted as an inode).
                    if (inode is not TmpfsRegularFile { Linkable: true } unnamed)
                    {
                        throw ErrnoException.Of(Errno.ENOENT);
                    }

                    unnamed.Linkable = false;
                }
            }

            inode.AddLink();
            AddLocked(name, inode);
            TouchModify();
        }
    }

    public void Unlink(string name)
    {
        lock (Fs.Gate)
        {
            var entry = FindLocked(name);
            if (entry.Inode.Type == FileMode.Directory)
            {
                throw ErrnoException.Of(Errno.EISDIR);
            }

            RemoveLocked(entry);
            entry.Inode.DropLink();
            TouchModify();
        }
    }

    public void RemoveDirectory(string name)
    {
        lock (Fs.Gate)
        {
            var entry = FindLocked(name);
            if (entry.Inode is not TmpfsDirectory directory)
            {
                throw ErrnoException.Of(Errno.ENOTDIR);
            }

            if (directory.Count != 0)
            {
                throw ErrnoException.Of(Errno.ENOTEMPTY);
            }

            RemoveLocked(entry);
            directory.MarkDeletedLocked();
            TouchModify();
        }
    }

    public void Rename(string oldName, IInode newParent, string newName, RenameFlags flags)
    {
        const RenameFlags known = RenameFlags.NoReplace | RenameFlags.Exchange | RenameFlags.Whiteout;
        if ((flags & ~known) != 0
            || (flags & RenameFlags.Exchange) != 0 && (flags & (RenameFlags.NoReplace | RenameFlags.Whiteout)) != 0)
        {
            throw ErrnoException.Of(Errno.EINVAL);
        }

        if (newParent is not TmpfsDirectory target || target.Fs != Fs)
        {
            throw ErrnoException.Of(Errno.EXDEV);
        }

        FsNames.CheckName(newName);
        lock (Fs.Gate)
        {
            var source = FindLocked(oldName);
            target.byName.TryGetValue(newName, out var existing);
            bool exchange = (flags & RenameFlags.Exchange) != 0;
            if (exchange && existing is null)
            {
                throw ErrnoException.Of(Errno.ENOENT);
            }

            if (target.deleted)
            {
                throw ErrnoException.Of(Errno.ENOENT);
            }

            if (existing is not null && ReferenceEquals(existing.Inode, source.Inode))
            {
                // Two names of one inode (or one name): rename does nothing.
                return;
            }

            if (existing is not null && (flags & RenameFlags.NoReplace) != 0)
            {
                throw ErrnoException.Of(Errno.EEXIST);
            }

            bool sourceIsDirectory = source.Inode.Type == FileMode.Directory;
            bool existingIsDirectory = existing?.Inode.Type == FileMode.Directory;
            if (sourceIsDirectory && target.IsWithin((TmpfsDirectory)source.Inode)
                || exchange && existingIsDirectory && IsWithin((TmpfsDirectory)existing!.Inode))
            {
                throw ErrnoException.Of(Errno.EINVAL);
            }

            if (exchange)
            {
                ExchangeLocked(source, target, existing!);
                return;
            }

            if (existing is not null)
            {
                if (sourceIsDirectory && !existingIsDirectory)
                {
                    throw ErrnoException.Of(Errno.ENOTDIR);
                }

                if (!sourceIsDirectory && existingIsDirectory)
                {
                    throw ErrnoException.Of(Errno.EISDIR);
                }

                if (existingIsDirectory && ((TmpfsDirectory)existing.Inode).Count != 0)
                {
                    throw ErrnoException.Of(Errno.ENOTEMPTY);
                }
            }

            TmpfsInode? whiteout = null;
            if ((flags & RenameFlags.Whiteout) != 0)
            {
                Fs.ReserveInode();
                whiteout = new TmpfsSpecialNode(Fs, FileMode.CharDevice, 0, default);
            }

            if (existing is not null)
            {
                target.RemoveLocked(existing);
                if (existing.Inode is TmpfsDirectory replaced)
                {
                    replaced.MarkDeletedLocked();
                }
                else
                {
                    existing.Inode.DropLink();
                }
            }

            RemoveLocked(source);
            target.AddLocked(newName, source.Inode);
            if (whiteout is not null)
            {
                AddLocked(oldName, whiteout);
            }

            source.Inode.TouchChange();
            TouchModify();
            if (target != this)
            {
                target.TouchModify();
            }
        }
    }

    /// <summary>RENAME_EXCHANGE: the two names swap inodes and keep their listing positions.</summary>
    private void ExchangeLocked(Entry source, TmpfsDirectory target, Entry existing)
    {
        var first = source.Inode;
        var second = existing.Inode;
        source.Inode = second;
        existing.Inode = first;
        if (target != this)
        {
            bool firstIsDirectory = first is TmpfsDirectory;
            bool secondIsDirectory = second is TmpfsDirectory;
            if (firstIsDirectory != secondIsDirectory)
            {
                // The subdirectory moves from this directory to the target or back.
                AdjustLinks(firstIsDirectory ? -1 : 1);
                target.AdjustLinks(firstIsDirectory ? 1 : -1);
            }

            if (first is TmpfsDirectory a)
            {
                a.Parent = target;
            }

            if (second is TmpfsDirectory b)
            {
                b.Parent = this;
            }
        }

        first.TouchChange();
        second.TouchChange();
        TouchModify();
        if (target != this)
        {
            target.TouchModify();
        }
    }

    /// <summary>True when this directory is <paramref name="ancestor"/> or lies below it.</summary>
    private bool IsWithin(TmpfsDirectory ancestor)
    {
        for (var directory = this; directory is not null; directory = directory.Parent)
        {
            if (directory == ancestor)
            {
                return true;
            }
        }

        return false;
    }

    private Entry FindLocked(string name)
    {
        if (FsNames.TooLong(name))
        {
            throw ErrnoException.Of(Errno.ENAMETOOLONG);
        }

        return byName.TryGetValue(name, out var entry) ? entry : throw ErrnoException.Of(Errno.ENOENT);
    }

    private void AddLocked(string name, TmpfsInode inode)
    {
        var entry = new Entry(name, inode, nextCookie++);
        byName.Add(name, entry);
        ordered.Add(entry);
        Volatile.Write(ref countForSize, byName.Count);
        if (inode is TmpfsDirectory directory)
        {
            directory.Parent = this;
            AdjustLinks(1);
        }
    }

    private void RemoveLocked(Entry entry)
    {
        byName.Remove(entry.Name);
        entry.Removed = true;
        removedInOrder++;
        Volatile.Write(ref countForSize, byName.Count);
        if (entry.Inode is TmpfsDirectory)
        {
            AdjustLinks(-1);
        }

        if (removedInOrder > 32 && removedInOrder > ordered.Count / 2)
        {
            // Cookies stay as they were; only the tombstones go.
            ordered.RemoveAll(e => e.Removed);
            removedInOrder = 0;
        }
    }

    private void AdjustLinks(int delta)
    {
        lock (Lock)
        {
            Links = (uint)(Links + delta);
        }
    }

    /// <summary>The directory was removed: no links, and nothing may be created in it.</summary>
    private void MarkDeletedLocked()
    {
        deleted = true;
        lock (Lock)
        {
            Links = 0;
            ChangeTime = Timespec.Now;
        }

        Fs.ReleaseInode();
    }

    /// <summary>Gathers the regular files below this directory (for freeing on unmount).</summary>
    internal void CollectFiles(List<TmpfsRegularFile> files)
    {
        foreach (var entry in byName.Values)
        {
            switch (entry.Inode)
            {
                case TmpfsRegularFile file:
                    files.Add(file);
                    break;
                case TmpfsDirectory directory:
                    directory.CollectFiles(files);
                    break;
            }
        }
    }

    private sealed class Entry(string name, TmpfsInode inode, long cookie)
    {
        public string Name { get; } = name;

        public TmpfsInode Inode { get; set; } = inode;

        public long Cookie { get; } = cookie;

        public bool Removed { get; set; }
    }
}

/// <summary>An open tmpfs directory: listing goes through the inode, reading fails with EISDIR.</summary>
internal sealed class TmpfsDirectoryDescription(TmpfsDirectory directory) : IFileOperations
{
    public IInode? Inode => directory;

    public long Read(Span<byte> buffer, ref long offset) => throw ErrnoException.Of(Errno.EISDIR);

    public long Write(ReadOnlySpan<byte> buffer, ref long offset, bool append) => throw ErrnoException.Of(Errno.EBADF);
}
