using System.Buffers;
using AppKernel.Vfs;
using FileMode = AppKernel.Vfs.FileMode;

namespace AppKernel.Sentry.Fs.Overlay;

/// <summary>
/// One object of an overlay: its upper inode (once it exists there), its lower inode (for objects
/// that come from, or were copied up from, the lower layer) and, for directories, whether lower
/// entries show through. Fields are guarded by the overlay's lock; <see cref="Upper"/> is also
/// read without it (a reference, set once).
/// </summary>
internal sealed class OverlayInode : IInode
{
    /// <summary>Listing cookies at or above this are upper-layer positions; below are lower-listing indexes.</summary>
    private const long UpperBase = 1L << 40;

    private static readonly List<LowerEntry> NoEntries = [];

    private readonly OverlayFileSystem fs;
    private IInode? upper;
    private Dictionary<string, WeakReference<OverlayInode>>? children;
    private int childrenSweepAt = 64;
    private List<LowerEntry>? lowerListing;
    private HashSet<string>? lowerNames;

    public OverlayInode(OverlayFileSystem fs, OverlayInode? parent, string name, FileMode type, ulong ino, IInode? upper, IInode? lower, bool opaque)
    {
        this.fs = fs;
        Parent = parent;
        Name = name;
        Type = type;
        Ino = ino;
        this.upper = upper;
        Lower = type == FileMode.Directory && opaque ? null : lower;
        Origin = lower;
    }

    public IFileSystem FileSystem => fs;

    public FileMode Type { get; }

    public ulong Ino { get; }

    /// <summary>The directory the object was found in (null for the root).</summary>
    internal OverlayInode? Parent { get; private set; }

    /// <summary>Its name there.</summary>
    internal string Name { get; private set; }

    /// <summary>The upper inode, or null while the object is only in the lower layer.</summary>
    internal IInode? Upper => Volatile.Read(ref upper);

    /// <summary>The lower inode that shows through: for a directory, null when it is opaque or upper-only.</summary>
    internal IInode? Lower { get; private set; }

    /// <summary>The lower inode the object came from (kept after copy-up).</summary>
    private IInode? Origin { get; }

    /// <summary>Removed from the overlay (open descriptions may still use it).</summary>
    internal bool Deleted { get; private set; }

    private bool IsDirectory => Type == FileMode.Directory;

    /// <summary>The inode that holds the object's current state.</summary>
    private IInode Real => Upper ?? Origin ?? throw ErrnoException.Of(Errno.ESTALE);

    public InodeAttributes GetAttributes()
    {
        var current = Upper;
        var attributes = (current ?? Real).GetAttributes();
        attributes.Ino = Ino;
        if (IsDirectory && current is not null && Lower is not null && !Deleted)
        {
            // Counting merged subdirectories is not worth it; 1 tells find(1) not to rely on it (as Linux does).
            attributes.Links = 1;
        }
        else if (Deleted && current is null)
        {
            attributes.Links = 0;
        }

        return attributes;
    }

    public void SetAttributes(in AttributeUpdate update)
    {
        lock (fs.Gate)
        {
            // Truncation needs no more data than the new size.
            long? limit = (update.Mask & AttributeMask.Size) != 0 ? update.Size : null;
            CopyUpLocked(limit);
            Upper!.SetAttributes(update);
        }
    }

    public string ReadLink() => Real.ReadLink();

    public IFileOperations Open(OpenFlags flags)
    {
        if (Type == FileMode.Regular && (flags & OpenFlags.Path) == 0 && (flags.CanWrite() || (flags & OpenFlags.Truncate) != 0))
        {
            lock (fs.Gate)
            {
                CopyUpLocked(null);
            }
        }

        var current = Upper;
        var real = current ?? Real;
        return new OverlayFileDescription(this, real.Open(flags), flags, onUpper: current is not null);
    }

    // ----- Extended attributes -----

    public int GetExtendedAttribute(string name, Span<byte> value)
    {
        CheckNotPrivate(name);
        return Real.GetExtendedAttribute(name, value);
    }

    public void SetExtendedAttribute(string name, ReadOnlySpan<byte> value, int flags)
    {
        CheckNotPrivate(name);
        lock (fs.Gate)
        {
            CopyUpLocked(null);
            Upper!.SetExtendedAttribute(name, value, flags);
        }
    }

    public IReadOnlyList<string> ListExtendedAttributes()
    {
        var names = Real.ListExtendedAttributes();
        return names.Any(IsPrivate) ? names.Where(n => !IsPrivate(n)).ToArray() : names;
    }

    public void RemoveExtendedAttribute(string name)
    {
        CheckNotPrivate(name);
        lock (fs.Gate)
        {
            if (Upper is null)
            {
                // Nothing to remove means no copy-up: ENODATA straight from the lower layer.
                Real.GetExtendedAttribute(name, []);
                CopyUpLocked(null);
            }

            Upper!.RemoveExtendedAttribute(name);
        }
    }

    private static bool IsPrivate(string name) => name.StartsWith(OverlayFileSystem.PrivateXattrPrefix, StringComparison.Ordinal);

    private static void CheckNotPrivate(string name)
    {
        if (IsPrivate(name))
        {
            throw ErrnoException.Of(Errno.EOPNOTSUPP);
        }
    }

    // ----- Lookup and listing -----

    public IInode? Lookup(string name)
    {
        RequireDirectory();
        if (FsNames.TooLong(name))
        {
            throw ErrnoException.Of(Errno.ENAMETOOLONG);
        }

        lock (fs.Gate)
        {
            return LookupLocked(name);
        }
    }

    /// <summary>The merged entry <paramref name="name"/>: the upper one unless it is a whiteout, else the lower one.</summary>
    private OverlayInode? LookupLocked(string name)
    {
        if (Deleted)
        {
            return null;
        }

        if (children is not null && children.TryGetValue(name, out var weak) && weak.TryGetTarget(out var cached))
        {
            return cached;
        }

        IInode? upperChild = Upper?.Lookup(name);
        IInode? lowerChild = null;
        FileMode type;
        bool opaque = false;
        if (upperChild is not null)
        {
            var attributes = upperChild.GetAttributes();
            if (IsWhiteout(attributes))
            {
                return null;
            }

            type = attributes.Mode.Type();
            if (type == FileMode.Directory)
            {
                opaque = IsOpaque(upperChild);
                if (!opaque && Lower?.Lookup(name) is { } below && below.GetAttributes().Mode.IsDirectory())
                {
                    lowerChild = below;
                }
            }

            var node = new OverlayInode(fs, this, name, type, fs.InoForUpper(attributes.Ino), upperChild, lowerChild, opaque);
            Remember(name, node);
            return node;
        }

        lowerChild = Lower?.Lookup(name);
        if (lowerChild is null)
        {
            return null;
        }

        var lowerAttributes = lowerChild.GetAttributes();
        var lowerNode = new OverlayInode(fs, this, name, lowerAttributes.Mode.Type(), fs.InoForLower(lowerAttributes.Ino), null, lowerChild, opaque: false);
        Remember(name, lowerNode);
        return lowerNode;
    }

    public IEnumerable<DirectoryEntry> ReadDirectory(long offset)
    {
        RequireDirectory();
        return Enumerate(Math.Max(offset, 2));
    }

    private IEnumerable<DirectoryEntry> Enumerate(long cookie)
    {
        while (true)
        {
            DirectoryEntry? next;
            lock (fs.Gate)
            {
                next = NextEntryLocked(cookie);
            }

            if (next is not { } entry)
            {
                yield break;
            }

            cookie = entry.NextOffset;
            yield return entry;
        }
    }

    /// <summary>
    /// The visible entry at or after <paramref name="cookie"/>. Names the lower layer has are listed
    /// in the lower listing's order (with the upper object's identity once it is copied up or
    /// replaced); names only the upper layer has come after, in its order. Either way a name keeps
    /// its position, so copy-up during a listing neither repeats nor skips it.
    /// </summary>
    private DirectoryEntry? NextEntryLocked(long cookie)
    {
        if (Deleted)
        {
            return null;
        }

        if (cookie < UpperBase)
        {
            var listing = LowerListingLocked();
            for (long index = cookie - 2; index < listing.Count; index++)
            {
                var entry = listing[(int)index];
                var upperChild = Upper?.Lookup(entry.Name);
                if (upperChild is null)
                {
                    return new DirectoryEntry(entry.Name, fs.InoForLower(entry.Ino), entry.Type, index + 3);
                }

                var attributes = upperChild.GetAttributes();
                if (!IsWhiteout(attributes))
                {
                    return new DirectoryEntry(entry.Name, fs.InoForUpper(attributes.Ino), attributes.Mode.Type(), index + 3);
                }
            }

            cookie = UpperBase + 2;
        }

        if (Upper is not { } upperDirectory)
        {
            return null;
        }

        var names = lowerNames;
        foreach (var entry in upperDirectory.ReadDirectory(cookie - UpperBase))
        {
            if (names is not null && names.Contains(entry.Name))
            {
                continue;
            }

            if (entry.Type == FileMode.CharDevice && upperDirectory.Lookup(entry.Name) is { } node && IsWhiteout(node.GetAttributes()))
            {
                continue;
            }

            return new DirectoryEntry(entry.Name, fs.InoForUpper(entry.Ino), entry.Type, UpperBase + entry.NextOffset);
        }

        return null;
    }

    /// <summary>The lower directory's entries, read once: the lower layer does not change.</summary>
    private List<LowerEntry> LowerListingLocked()
    {
        if (Lower is null)
        {
            return NoEntries;
        }

        if (lowerListing is null)
        {
            var listing = new List<LowerEntry>();
            var names = new HashSet<string>(StringComparer.Ordinal);
            foreach (var entry in Lower.ReadDirectory(2))
            {
                if (names.Add(entry.Name))
                {
                    listing.Add(new LowerEntry(entry.Name, entry.Ino, entry.Type));
                }
            }

            lowerNames = names;
            lowerListing = listing;
        }

        return lowerListing;
    }

    private bool IsEmptyLocked() => NextEntryLocked(2) is null;

    // ----- Creation -----

    public IInode CreateNode(string name, FileMode mode, ulong device, FileOwner owner)
    {
        if (mode.Type() == FileMode.CharDevice && device == 0)
        {
            // A 0:0 character device is how the upper layer spells "deleted".
            throw ErrnoException.Of(Errno.EPERM);
        }

        return Create(name, FileMode.None, upperDirectory => upperDirectory.CreateNode(name, mode, device, owner));
    }

    public IInode CreateDirectory(string name, FileMode mode, FileOwner owner) =>
        Create(name, FileMode.Directory, upperDirectory => upperDirectory.CreateDirectory(name, mode, owner));

    public IInode CreateSymlink(string name, string target, FileOwner owner) =>
        Create(name, FileMode.Symlink, upperDirectory => upperDirectory.CreateSymlink(name, target, owner));

    private OverlayInode Create(string name, FileMode type, Func<IInode, IInode> create)
    {
        RequireDirectory();
        FsNames.CheckName(name);
        lock (fs.Gate)
        {
            if (Deleted)
            {
                throw ErrnoException.Of(Errno.ENOENT);
            }

            if (LookupLocked(name) is not null)
            {
                throw ErrnoException.Of(Errno.EEXIST);
            }

            CopyUpLocked(null);
            var upperDirectory = Upper!;
            bool hadWhiteout = RemoveWhiteoutLocked(name);
            IInode created;
            try
            {
                created = create(upperDirectory);
            }
            catch
            {
                if (hadWhiteout)
                {
                    CreateWhiteout(upperDirectory, name);
                }

                throw;
            }

            var attributes = created.GetAttributes();
            bool opaque = false;
            if (attributes.Mode.IsDirectory() && (hadWhiteout || LowerHas(name)))
            {
                // The lower entry this name hid must not show through the new directory.
                SetOpaque(created);
                opaque = true;
            }

            var node = new OverlayInode(fs, this, name, attributes.Mode.Type(), fs.InoForUpper(attributes.Ino), created, null, opaque);
            Remember(name, node);
            return node;
        }
    }

    public void Link(string name, IInode target)
    {
        RequireDirectory();
        if (target is not OverlayInode source || source.fs != fs)
        {
            throw ErrnoException.Of(Errno.EXDEV);
        }

        if (source.IsDirectory)
        {
            throw ErrnoException.Of(Errno.EPERM);
        }

        FsNames.CheckName(name);
        lock (fs.Gate)
        {
            if (Deleted)
            {
                throw ErrnoException.Of(Errno.ENOENT);
            }

            if (LookupLocked(name) is not null)
            {
                throw ErrnoException.Of(Errno.EEXIST);
            }

            if (source.Deleted && source.Upper is null)
            {
                throw ErrnoException.Of(Errno.ENOENT);
            }

            source.CopyUpLocked(null);
            CopyUpLocked(null);
            bool hadWhiteout = RemoveWhiteoutLocked(name);
            try
            {
                Upper!.Link(name, source.Upper!);
            }
            catch
            {
                if (hadWhiteout)
                {
                    CreateWhiteout(Upper!, name);
                }

                throw;
            }
        }
    }

    // ----- Removal -----

    public void Unlink(string name)
    {
        RequireDirectory();
        lock (fs.Gate)
        {
            var node = LookupLocked(name) ?? throw ErrnoException.Of(Errno.ENOENT);
            if (node.IsDirectory)
            {
                throw ErrnoException.Of(Errno.EISDIR);
            }

            RemoveLocked(node, name);
        }
    }

    public void RemoveDirectory(string name)
    {
        RequireDirectory();
        lock (fs.Gate)
        {
            var node = LookupLocked(name) ?? throw ErrnoException.Of(Errno.ENOENT);
            if (!node.IsDirectory)
            {
                throw ErrnoException.Of(Errno.ENOTDIR);
            }

            if (!node.IsEmptyLocked())
            {
                throw ErrnoException.Of(Errno.ENOTEMPTY);
            }

            RemoveLocked(node, name);
        }
    }

    /// <summary>Removes <paramref name="node"/>, leaving a whiteout when a lower entry would show through.</summary>
    private void RemoveLocked(OverlayInode node, string name)
    {
        bool needsWhiteout = LowerHas(name);
        if (needsWhiteout)
        {
            CopyUpLocked(null);
        }

        if (node.Upper is { } upperObject)
        {
            var upperDirectory = Upper!;
            string? temp = needsWhiteout ? CreateTempWhiteout(upperDirectory) : null;
            if (node.IsDirectory)
            {
                // An empty merged directory may still hold whiteouts; they go only once nothing can fail
                // before the directory itself goes (else the lower entries they hide would come back).
                ClearWhiteouts(upperObject);
            }

            if (temp is not null)
            {
                // Swap the fresh whiteout in for the upper object in one step, then drop the object.
                upperDirectory.Rename(temp, upperDirectory, name, RenameFlags.Exchange);
                RemoveUpperEntry(upperDirectory, temp, node.IsDirectory);
            }
            else
            {
                RemoveUpperEntry(upperDirectory, name, node.IsDirectory);
            }
        }
        else if (needsWhiteout)
        {
            CreateWhiteout(Upper!, name);
        }

        Forget(name);
        node.Deleted = true;
    }

    private static void RemoveUpperEntry(IInode directory, string name, bool isDirectory)
    {
        if (isDirectory)
        {
            directory.RemoveDirectory(name);
        }
        else
        {
            directory.Unlink(name);
        }
    }

    // ----- Rename -----

    public void Rename(string oldName, IInode newParent, string newName, RenameFlags flags)
    {
        RequireDirectory();
        if ((flags & ~(RenameFlags.NoReplace | RenameFlags.Exchange)) != 0
            || (flags & (RenameFlags.NoReplace | RenameFlags.Exchange)) == (RenameFlags.NoReplace | RenameFlags.Exchange))
        {
            throw ErrnoException.Of(Errno.EINVAL);
        }

        if (newParent is not OverlayInode target || target.fs != fs)
        {
            throw ErrnoException.Of(Errno.EXDEV);
        }

        target.RequireDirectory();
        FsNames.CheckName(newName);
        lock (fs.Gate)
        {
            var source = LookupLocked(oldName) ?? throw ErrnoException.Of(Errno.ENOENT);
            var existing = target.LookupLocked(newName);
            bool exchange = (flags & RenameFlags.Exchange) != 0;
            if (target.Deleted || (exchange && existing is null))
            {
                throw ErrnoException.Of(Errno.ENOENT);
            }

            if (existing is not null && (existing == source || (source.Upper is not null && ReferenceEquals(source.Upper, existing.Upper))))
            {
                return;
            }

            if (existing is not null && (flags & RenameFlags.NoReplace) != 0)
            {
                throw ErrnoException.Of(Errno.EEXIST);
            }

            // Without redirect_dir a directory with a lower part cannot move: EXDEV makes mv copy it.
            if ((source.IsDirectory && source.Lower is not null) || (exchange && existing!.IsDirectory && existing.Lower is not null))
            {
                throw ErrnoException.Of(Errno.EXDEV);
            }

            if ((source.IsDirectory && target.IsWithin(source)) || (exchange && existing!.IsDirectory && IsWithin(existing)))
            {
                throw ErrnoException.Of(Errno.EINVAL);
            }

            if (!exchange && existing is not null)
            {
                if (source.IsDirectory && !existing.IsDirectory)
                {
                    throw ErrnoException.Of(Errno.ENOTDIR);
                }

                if (!source.IsDirectory && existing.IsDirectory)
                {
                    throw ErrnoException.Of(Errno.EISDIR);
                }

                if (existing.IsDirectory && !existing.IsEmptyLocked())
                {
                    throw ErrnoException.Of(Errno.ENOTEMPTY);
                }
            }

            source.CopyUpLocked(null);
            target.CopyUpLocked(null);
            if (exchange)
            {
                existing!.CopyUpLocked(null);
            }

            var fromDirectory = Upper!;
            var toDirectory = target.Upper!;
            bool sourceOpaque = source.IsDirectory && target.LowerHas(newName);
            bool existingOpaque = exchange && existing!.IsDirectory && LowerHas(oldName);
            if (!exchange)
            {
                if (existing?.Upper is { } replaced && existing.IsDirectory)
                {
                    ClearWhiteouts(replaced);
                }
                else if (existing is null)
                {
                    target.RemoveWhiteoutLocked(newName);
                }
            }

            if (sourceOpaque)
            {
                SetOpaque(source.Upper!);
            }

            if (existingOpaque)
            {
                SetOpaque(existing!.Upper!);
            }

            if (exchange)
            {
                fromDirectory.Rename(oldName, toDirectory, newName, RenameFlags.Exchange);
            }
            else if (LowerHas(oldName))
            {
                // The old name must go on hiding the lower entry: leave a whiteout in the same step.
                try
                {
                    fromDirectory.Rename(oldName, toDirectory, newName, RenameFlags.Whiteout);
                }
                catch (ErrnoException e) when (e.Errno == Errno.EINVAL)
                {
                    fromDirectory.Rename(oldName, toDirectory, newName, RenameFlags.None);
                    CreateWhiteout(fromDirectory, oldName);
                }
            }
            else
            {
                fromDirectory.Rename(oldName, toDirectory, newName, RenameFlags.None);
            }

            Forget(oldName);
            target.Forget(newName);
            if (existing is not null && !exchange)
            {
                existing.Deleted = true;
            }

            source.Move(target, newName, sourceOpaque);
            target.Remember(newName, source);
            if (exchange)
            {
                existing!.Move(this, oldName, existingOpaque);
                Remember(oldName, existing);
            }
        }
    }

    private void Move(OverlayInode parent, string name, bool becameOpaque)
    {
        Parent = parent;
        Name = name;
        if (becameOpaque)
        {
            Lower = null;
            lowerListing = null;
            lowerNames = null;
        }
    }

    private bool IsWithin(OverlayInode ancestor)
    {
        for (var node = this; node is not null; node = node.Parent)
        {
            if (node == ancestor)
            {
                return true;
            }
        }

        return false;
    }

    // ----- Copy-up -----

    /// <summary>
    /// Gives the object an upper copy (its parents first): data (up to <paramref name="dataLimit"/>
    /// bytes), mode, owner, times and extended attributes. The parent's times are kept as they were.
    /// </summary>
    internal void CopyUpLocked(long? dataLimit)
    {
        if (Upper is not null)
        {
            return;
        }

        if (Deleted || Parent is null || Origin is null)
        {
            throw ErrnoException.Of(Errno.ENOENT);
        }

        Parent.CopyUpLocked(null);
        var parentUpper = Parent.Upper!;
        var parentTimes = parentUpper.GetAttributes();
        var attributes = Origin.GetAttributes();
        var owner = new FileOwner(attributes.Uid, attributes.Gid);
        var permissions = attributes.Mode & FileMode.PermissionMask;
        IInode copy = Type switch
        {
            FileMode.Directory => parentUpper.CreateDirectory(Name, permissions, owner),
            FileMode.Regular => parentUpper.CreateNode(Name, FileMode.Regular | permissions, 0, owner),
            FileMode.Symlink => parentUpper.CreateSymlink(Name, Origin.ReadLink(), owner),
            _ => parentUpper.CreateNode(Name, attributes.Mode, attributes.Rdev, owner),
        };

        try
        {
            if (Type == FileMode.Regular)
            {
                CopyData(Origin, copy, Math.Min(attributes.Size, dataLimit ?? long.MaxValue));
            }

            CopyExtendedAttributes(Origin, copy);
            var mask = AttributeMask.Uid | AttributeMask.Gid | AttributeMask.AccessTime | AttributeMask.ModifyTime;
            if (Type != FileMode.Symlink)
            {
                mask |= AttributeMask.Mode;
            }

            copy.SetAttributes(new AttributeUpdate(mask, permissions, attributes.Uid, attributes.Gid, 0, attributes.AccessTime, attributes.ModifyTime));
        }
        catch
        {
            RemoveUpperEntry(parentUpper, Name, Type == FileMode.Directory);
            throw;
        }

        parentUpper.SetAttributes(new AttributeUpdate(
            AttributeMask.AccessTime | AttributeMask.ModifyTime, AccessTime: parentTimes.AccessTime, ModifyTime: parentTimes.ModifyTime));
        fs.RecordCopyUp(copy.GetAttributes().Ino, Ino);
        Volatile.Write(ref upper, copy);
    }

    /// <summary>Copies <paramref name="length"/> bytes, leaving all-zero pages as holes.</summary>
    private static void CopyData(IInode from, IInode to, long length)
    {
        if (length <= 0)
        {
            return;
        }

        const int ChunkSize = 1 << 16;
        const int Page = 4096;
        var reader = from.Open(OpenFlags.ReadOnly);
        IFileOperations? writer = null;
        byte[] buffer = ArrayPool<byte>.Shared.Rent(ChunkSize);
        try
        {
            writer = to.Open(OpenFlags.WriteOnly);
            long readOffset = 0;
            while (readOffset < length)
            {
                long start = readOffset;
                int want = (int)Math.Min(ChunkSize, length - readOffset);
                long count = reader.Read(buffer.AsSpan(0, want), ref readOffset);
                if (count <= 0)
                {
                    break;
                }

                for (int at = 0; at < count; at += Page)
                {
                    int size = (int)Math.Min(Page, count - at);
                    var piece = buffer.AsSpan(at, size);
                    if (piece.IndexOfAnyExcept((byte)0) >= 0)
                    {
                        long writeOffset = start + at;
                        while (piece.Length > 0)
                        {
                            long written = writer.Write(piece, ref writeOffset, append: false);
                            piece = piece[(int)written..];
                        }
                    }
                }
            }

            // Trailing holes still give the copy the right size.
            to.SetAttributes(new AttributeUpdate(AttributeMask.Size, Size: length));
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
            writer?.Release();
            reader.Release();
        }
    }

    private static void CopyExtendedAttributes(IInode from, IInode to)
    {
        IReadOnlyList<string> names;
        try
        {
            names = from.ListExtendedAttributes();
        }
        catch (ErrnoException e) when (e.Errno == Errno.EOPNOTSUPP)
        {
            return;
        }

        foreach (string name in names)
        {
            if (IsPrivate(name))
            {
                continue;
            }

            try
            {
                int size = from.GetExtendedAttribute(name, []);
                var value = new byte[size];
                size = from.GetExtendedAttribute(name, value);
                to.SetExtendedAttribute(name, value.AsSpan(0, size), 0);
            }
            catch (ErrnoException e) when (e.Errno is Errno.ENODATA or Errno.EOPNOTSUPP or Errno.ERANGE)
            {
                // Gone or not representable in the upper layer: as Linux, skip what cannot be copied.
            }
        }
    }

    // ----- Whiteouts and opacity -----

    private static bool IsWhiteout(in InodeAttributes attributes) =>
        attributes.Mode.Type() == FileMode.CharDevice && attributes.Rdev == 0;

    private static bool IsOpaque(IInode directory)
    {
        Span<byte> value = stackalloc byte[1];
        try
        {
            return directory.GetExtendedAttribute(OverlayFileSystem.OpaqueXattr, value) == 1 && value[0] == (byte)'y';
        }
        catch (ErrnoException)
        {
            return false;
        }
    }

    private static void SetOpaque(IInode directory) =>
        directory.SetExtendedAttribute(OverlayFileSystem.OpaqueXattr, "y"u8, 0);

    private static void CreateWhiteout(IInode directory, string name) =>
        directory.CreateNode(name, FileMode.CharDevice, 0, new FileOwner(0, 0));

    private string CreateTempWhiteout(IInode directory)
    {
        while (true)
        {
            string name = fs.TempName();
            if (directory.Lookup(name) is null)
            {
                CreateWhiteout(directory, name);
                return name;
            }
        }
    }

    /// <summary>True when the lower layer has an entry that would show at <paramref name="name"/>.</summary>
    private bool LowerHas(string name) => Lower?.Lookup(name) is not null;

    /// <summary>Removes a whiteout at <paramref name="name"/> in the upper directory; true if there was one.</summary>
    private bool RemoveWhiteoutLocked(string name)
    {
        if (Upper?.Lookup(name) is { } entry && IsWhiteout(entry.GetAttributes()))
        {
            Upper.Unlink(name);
            return true;
        }

        return false;
    }

    /// <summary>Removes the whiteouts from an upper directory that is otherwise empty, so it can be removed or replaced.</summary>
    private static void ClearWhiteouts(IInode directory)
    {
        var names = directory.ReadDirectory(2).Where(e => e.Type == FileMode.CharDevice).Select(e => e.Name).ToList();
        foreach (string name in names)
        {
            if (directory.Lookup(name) is { } entry && IsWhiteout(entry.GetAttributes()))
            {
                directory.Unlink(name);
            }
        }
    }

    // ----- The children cache -----

    private void Remember(string name, OverlayInode node)
    {
        children ??= new Dictionary<string, WeakReference<OverlayInode>>(StringComparer.Ordinal);
        children[name] = new WeakReference<OverlayInode>(node);
        if (children.Count >= childrenSweepAt)
        {
            foreach (var (key, value) in children.ToList())
            {
                if (!value.TryGetTarget(out _))
                {
                    children.Remove(key);
                }
            }

            childrenSweepAt = Math.Max(64, children.Count * 2);
        }
    }

    private void Forget(string name) => children?.Remove(name);

    private void RequireDirectory()
    {
        if (!IsDirectory)
        {
            throw ErrnoException.Of(Errno.ENOTDIR);
        }
    }

    private readonly record struct LowerEntry(string Name, ulong Ino, FileMode Type);
}
