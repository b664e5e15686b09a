using AppKernel.Vfs;
using FileMode = AppKernel.Vfs.FileMode;

namespace AppKernel.Sentry.Fs.Tmpfs;

/// <summary>
/// What every tmpfs inode has: number, mode, owner, link count, times and extended attributes.
/// These fields are guarded by <see cref="Lock"/>, which is taken after the filesystem's
/// namespace lock and never before it.
/// </summary>
internal abstract class TmpfsInode : IInode
{
    private List<KeyValuePair<string, byte[]>>? xattrs;

    protected TmpfsInode(TmpfsFileSystem fs, FileMode mode, FileOwner owner, uint links)
    {
        Fs = fs;
        Ino = fs.NextIno();
        Mode = mode;
        Uid = owner.Uid;
        Gid = owner.Gid;
        Links = links;
        var now = Timespec.Now;
        AccessTime = ModifyTime = ChangeTime = BirthTime = now;
    }

    public TmpfsFileSystem Fs { get; }

    public IFileSystem FileSystem => Fs;

    public ulong Ino { get; }

    /// <summary>The file type bits, which never change.</summary>
    public FileMode Type => Mode.Type();

    /// <summary>Guards the inode's attributes (and a regular file's data).</summary>
    internal object Lock { get; } = new();

    // Guarded by Lock.
    internal FileMode Mode;
    internal int Uid;
    internal int Gid;
    internal uint Links;
    internal Timespec AccessTime;
    internal Timespec ModifyTime;
    internal Timespec ChangeTime;
    internal Timespec BirthTime;

    public InodeAttributes GetAttributes()
    {
        lock (Lock)
        {
            var attributes = new InodeAttributes
            {
                Ino = Ino,
                Mode = Mode,
                Links = Links,
                Uid = Uid,
                Gid = Gid,
                BlockSize = TmpfsFileSystem.PageSize,
                AccessTime = AccessTime,
                ModifyTime = ModifyTime,
                ChangeTime = ChangeTime,
                BirthTime = BirthTime,
            };
            FillAttributesLocked(ref attributes);
            return attributes;
        }
    }

    /// <summary>Adds the kind-specific fields (size, blocks, rdev).</summary>
    protected abstract void FillAttributesLocked(ref InodeAttributes attributes);

    public virtual void SetAttributes(in AttributeUpdate update)
    {
        if ((update.Mask & AttributeMask.Size) != 0)
        {
            throw ErrnoException.Of(Type == FileMode.Directory ? Errno.EISDIR : Errno.EINVAL);
        }

        lock (Lock)
        {
            ApplyAttributesLocked(update);
        }
    }

    /// <summary>Applies mode, owner and times; every change also sets ctime.</summary>
    protected void ApplyAttributesLocked(in AttributeUpdate update)
    {
        if ((update.Mask & AttributeMask.Mode) != 0)
        {
            Mode = Type | (update.Mode & FileMode.PermissionMask);
        }

        if ((update.Mask & AttributeMask.Uid) != 0 && update.Uid != -1)
        {
            Uid = update.Uid;
        }

        if ((update.Mask & AttributeMask.Gid) != 0 && update.Gid != -1)
        {
            Gid = update.Gid;
        }

        if ((update.Mask & AttributeMask.AccessTime) != 0)
        {
            AccessTime = update.AccessTime;
        }

        if ((update.Mask & AttributeMask.ModifyTime) != 0)
        {
            ModifyTime = update.ModifyTime;
        }

        if (update.Mask != AttributeMask.None)
        {
            ChangeTime = Timespec.Now;
        }
    }

    public abstract IFileOperations Open(OpenFlags flags);

    /// <summary>Sets ctime (link count or metadata changed).</summary>
    internal void TouchChange()
    {
        lock (Lock)
        {
            ChangeTime = Timespec.Now;
        }
    }

    /// <summary>Sets mtime and ctime (contents changed).</summary>
    internal void TouchModify()
    {
        lock (Lock)
        {
            ModifyTime = ChangeTime = Timespec.Now;
        }
    }

    /// <summary>Relatime: updates atime after a read or a listing when it is stale.</summary>
    internal void TouchAccessLocked()
    {
        var now = Timespec.Now;
        if (FsNames.AccessTimeNeedsUpdate(AccessTime, ModifyTime, ChangeTime, now))
        {
            AccessTime = now;
        }
    }

    /// <summary>Adds a hard link (under the namespace lock).</summary>
    internal void AddLink()
    {
        lock (Lock)
        {
            Links++;
            ChangeTime = Timespec.Now;
        }
    }

    /// <summary>Drops a name of a non-directory (under the namespace lock); the last one frees the inode once unused.</summary>
    internal void DropLink()
    {
        bool last;
        lock (Lock)
        {
            Links--;
            ChangeTime = Timespec.Now;
            last = Links == 0;
        }

        if (last)
        {
            Fs.ReleaseInode();
            OnLastLinkGone();
        }
    }

    /// <summary>Called when the last name is gone (files free their data once nothing holds them open).</summary>
    protected virtual void OnLastLinkGone()
    {
    }

    public int GetExtendedAttribute(string name, Span<byte> value)
    {
        FsNames.CheckXattrName(name);
        lock (Lock)
        {
            byte[]? data = FindXattrLocked(name);
            if (data is null)
            {
                throw ErrnoException.Of(Errno.ENODATA);
            }

            if (value.Length == 0)
            {
                return data.Length;
            }

            if (value.Length < data.Length)
            {
                throw ErrnoException.Of(Errno.ERANGE);
            }

            data.CopyTo(value);
            return data.Length;
        }
    }

    public void SetExtendedAttribute(string name, ReadOnlySpan<byte> value, int flags)
    {
        if ((flags & ~(FsNames.XattrCreate | FsNames.XattrReplace)) != 0)
        {
            throw ErrnoException.Of(Errno.EINVAL);
        }

        FsNames.CheckXattrName(name);
        if (value.Length > FsNames.XattrSizeMax)
        {
            throw ErrnoException.Of(Errno.E2BIG);
        }

        if (FsNames.IsUserXattr(name) && Type is not (FileMode.Regular or FileMode.Directory))
        {
            throw ErrnoException.Of(Errno.EPERM);
        }

        lock (Lock)
        {
            xattrs ??= [];
            int index = xattrs.FindIndex(x => x.Key == name);
            if (index >= 0 && (flags & FsNames.XattrCreate) != 0)
            {
                throw ErrnoException.Of(Errno.EEXIST);
            }

            if (index < 0 && (flags & FsNames.XattrReplace) != 0)
            {
                throw ErrnoException.Of(Errno.ENODATA);
            }

            var entry = new KeyValuePair<string, byte[]>(name, value.ToArray());
            if (index >= 0)
            {
                xattrs[index] = entry;
            }
            else
            {
                xattrs.Add(entry);
            }

            ChangeTime = Timespec.Now;
        }
    }

    public IReadOnlyList<string> ListExtendedAttributes()
    {
        lock (Lock)
        {
            if (xattrs is null || xattrs.Count == 0)
            {
                return [];
            }

            var names = new string[xattrs.Count];
            for (int i = 0; i < names.Length; i++)
            {
                names[i] = xattrs[i].Key;
            }

            return names;
        }
    }

    public void RemoveExtendedAttribute(string name)
    {
        FsNames.CheckXattrName(name);
        lock (Lock)
        {
            int index = xattrs?.FindIndex(x => x.Key == name) ?? -1;
            if (index < 0)
            {
                throw ErrnoException.Of(Errno.ENODATA);
            }

            xattrs!.RemoveAt(index);
            ChangeTime = Timespec.Now;
        }
    }

    private byte[]? FindXattrLocked(string name)
    {
        if (xattrs is not null)
        {
            foreach (var (key, data) in xattrs)
            {
                if (key == name)
                {
                    return data;
                }
            }
        }

        return null;
    }
}

/// <summary>A symbolic link.</summary>
internal sealed class TmpfsSymlink : TmpfsInode, IInode
{
    private readonly string target;
    private readonly long length;

    public TmpfsSymlink(TmpfsFileSystem fs, string target, FileOwner owner)
        : base(fs, FileMode.Symlink | (FileMode)0x1FF, owner, links: 1)
    {
        this.target = target;
        length = System.Text.Encoding.UTF8.GetByteCount(target);
    }

    public string ReadLink() => target;

    public override IFileOperations Open(OpenFlags flags) => new TmpfsPathDescription(this);

    protected override void FillAttributesLocked(ref InodeAttributes attributes) => attributes.Size = length;
}

/// <summary>A FIFO, socket, character or block device node: only its mode and rdev are kept.</summary>
internal sealed class TmpfsSpecialNode : TmpfsInode, IInode
{
    public TmpfsSpecialNode(TmpfsFileSystem fs, FileMode mode, ulong rdev, FileOwner owner)
        : base(fs, mode, owner, links: 1)
    {
        Rdev = rdev;
    }

    public ulong Rdev { get; }

    /// <summary>The VFS opens FIFOs, sockets and devices itself; this serves O_PATH and the like.</summary>
    public override IFileOperations Open(OpenFlags flags) => new TmpfsPathDescription(this);

    protected override void FillAttributesLocked(ref InodeAttributes attributes) => attributes.Rdev = Rdev;
}

/// <summary>An open symlink or special node (O_PATH): no reading or writing.</summary>
internal sealed class TmpfsPathDescription(IInode inode) : IFileOperations
{
    public IInode? Inode => inode;

    public long Read(Span<byte> buffer, ref long offset) => throw ErrnoException.Of(Errno.EBADF);

    public long Write(ReadOnlySpan<byte> buffer, ref long offset, bool append) => throw ErrnoException.Of(Errno.EBADF);
}
