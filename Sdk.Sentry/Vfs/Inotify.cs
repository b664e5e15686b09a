using System.Buffers.Binary;
using System.Text;
using AppKernel.Sentry.Abi;
using AppKernel.Sentry.Kernel.Events;
using AppKernel.Syscalls;
using AppKernel.Vfs;

namespace AppKernel.Sentry.Vfs;

/// <summary>inotify's event bits (Linux's IN_*).</summary>
internal static class InotifyMask
{
    public const uint Access = 0x1, Modify = 0x2, Attrib = 0x4, CloseWrite = 0x8, CloseNoWrite = 0x10, Open = 0x20,
        MovedFrom = 0x40, MovedTo = 0x80, Create = 0x100, Delete = 0x200, DeleteSelf = 0x400, MoveSelf = 0x800,
        Unmount = 0x2000, QueueOverflow = 0x4000, Ignored = 0x8000, OnlyDir = 0x1000000, DontFollow = 0x2000000,
        ExclUnlink = 0x4000000, MaskCreate = 0x10000000, MaskAdd = 0x20000000, IsDir = 0x40000000, OneShot = 0x80000000,
        AllEvents = 0xFFF;
}

/// <summary>
/// The sandbox's inotify watches, keyed like file locks by (filesystem, inode number), so a watch
/// sees changes made through any path, by any process. The VFS and the syscalls report changes
/// here; with no watch anywhere a report costs one volatile read.
/// </summary>
internal sealed class InotifyRegistry
{
    private readonly object gate = new();
    private readonly Dictionary<object, List<InotifyWatch>> watches = new();
    private volatile int count;
    private int nextCookie;

    /// <summary>True while some watch exists.</summary>
    public bool Active => count > 0;

    /// <summary>A fresh cookie pairing IN_MOVED_FROM with IN_MOVED_TO.</summary>
    public uint NextCookie() => (uint)Interlocked.Increment(ref nextCookie);

    public static object KeyOf(IInode inode) => new InodeKey(inode.FileSystem, inode.GetAttributes().Ino);

    public void Add(InotifyWatch watch)
    {
        lock (gate)
        {
            if (!watches.TryGetValue(watch.Key, out var list))
            {
                watches[watch.Key] = list = [];
            }

            list.Add(watch);
            count++;
        }
    }

    public void Remove(InotifyWatch watch)
    {
        lock (gate)
        {
            if (watches.TryGetValue(watch.Key, out var list) && list.Remove(watch))
            {
                count--;
                if (list.Count == 0)
                {
                    watches.Remove(watch.Key);
                }
            }
        }
    }

    private InotifyWatch[] WatchesOf(IInode inode)
    {
        lock (gate)
        {
            return watches.TryGetValue(KeyOf(inode), out var list) ? [.. list] : [];
        }
    }

    /// <summary>A directory entry changed (IN_CREATE, IN_DELETE, IN_MOVED_FROM/TO): the directory's watches hear it with the name.</summary>
    public void DirectoryEvent(IInode directory, string name, uint mask, bool isDirectory, uint cookie = 0)
    {
        if (!Active)
        {
            return;
        }

        foreach (var watch in WatchesOf(directory))
        {
            watch.Deliver(mask | (isDirectory ? InotifyMask.IsDir : 0), cookie, name);
        }
    }

    /// <summary>
    /// Something happened to a file (open, close, read, write, attributes): the watches of its
    /// directory hear it with its name, then its own watches without.
    /// </summary>
    public void FileEvent(VfsPath? path, IInode inode, uint mask)
    {
        if (!Active)
        {
            return;
        }

        bool isDirectory = inode.GetAttributes().Mode.IsDirectory();
        uint flags = isDirectory ? InotifyMask.IsDir : 0;
        if (path is { } p && p.Dentry.Parent is { } parent && p.Dentry != p.Mount.Root)
        {
            foreach (var watch in WatchesOf(parent.Inode))
            {
                watch.Deliver(mask | flags, 0, p.Dentry.Name);
            }
        }

        SelfEvent(inode, mask | flags);
    }

    /// <summary>An event only the inode's own watches hear (IN_DELETE_SELF, IN_MOVE_SELF, IN_ATTRIB for a link count).</summary>
    public void SelfEvent(IInode inode, uint mask)
    {
        if (!Active)
        {
            return;
        }

        foreach (var watch in WatchesOf(inode))
        {
            watch.Deliver(mask, 0, null);
            if ((mask & InotifyMask.DeleteSelf) != 0)
            {
                // The inode is gone: its watches go too.
                watch.Instance.RemoveWatch(watch, ignored: true);
            }
        }
    }

    private sealed record InodeKey(IFileSystem FileSystem, ulong Ino)
    {
        public bool Equals(InodeKey? other) => other is not null && ReferenceEquals(FileSystem, other.FileSystem) && Ino == other.Ino;

        public override int GetHashCode() => HashCode.Combine(System.Runtime.CompilerServices.RuntimeHelpers.GetHashCode(FileSystem), Ino);
    }
}

/// <summary>One watch: an instance's interest in one inode.</summary>
internal sealed class InotifyWatch(InotifyInstance instance, int descriptor, object key, uint mask)
{
    public InotifyInstance Instance { get; } = instance;

    public int Descriptor { get; } = descriptor;

    public object Key { get; } = key;

    public uint Mask { get; set; } = mask;

    public void Deliver(uint mask, uint cookie, string? name)
    {
        if ((mask & Mask & InotifyMask.AllEvents) == 0)
        {
            return;
        }

        Instance.Queue(Descriptor, mask, cookie, name);
        if ((Mask & InotifyMask.OneShot) != 0)
        {
            Instance.RemoveWatch(this, ignored: true);
        }
    }
}

/// <summary>An inotify instance: its watches and its queue of events, read as struct inotify_event records.</summary>
internal sealed class InotifyInstance(InotifyRegistry registry) : IFileOperations
{
    /// <summary>Linux's default /proc/sys/fs/inotify/max_queued_events.</summary>
    public const int MaxQueued = 16384;

    private readonly object gate = new();
    private readonly Dictionary<int, InotifyWatch> byDescriptor = new();
    private readonly Dictionary<object, InotifyWatch> byKey = new();
    private readonly LinkedList<Event> queue = new();
    private int nextDescriptor = 1;
    private int queuedBytes;
    private bool overflowed;

    private readonly record struct Event(int Wd, uint Mask, uint Cookie, byte[] Name)
    {
        public int Size => 16 + Name.Length;
    }

    public IInode? Inode => AnonymousInode.Instance;

    public bool IsStream => true;

    public WaitQueue Waiters { get; } = new();

    WaitQueue? IFileOperations.Waiters => Waiters;

    /// <summary>inotify_add_watch: a new watch, or the existing one for the inode with its mask replaced (or extended with IN_MASK_ADD).</summary>
    public int AddWatch(IInode inode, uint mask)
    {
        var key = InotifyRegistry.KeyOf(inode);
        lock (gate)
        {
            if (byKey.TryGetValue(key, out var existing))
            {
                if ((mask & InotifyMask.MaskCreate) != 0)
                {
                    throw ErrnoException.Of(Errno.EEXIST);
                }

                existing.Mask = (mask & InotifyMask.MaskAdd) != 0 ? existing.Mask | mask : mask;
                return existing.Descriptor;
            }

            var watch = new InotifyWatch(this, nextDescriptor++, key, mask);
            byKey[key] = watch;
            byDescriptor[watch.Descriptor] = watch;
            registry.Add(watch);
            return watch.Descriptor;
        }
    }

    /// <summary>inotify_rm_watch: EINVAL for an unknown descriptor; the watch's last event is IN_IGNORED.</summary>
    public void RemoveWatch(int descriptor)
    {
        InotifyWatch? watch;
        lock (gate)
        {
            if (!byDescriptor.TryGetValue(descriptor, out watch))
            {
                throw ErrnoException.Of(Errno.EINVAL);
            }
        }

        RemoveWatch(watch, ignored: true);
    }

    public void RemoveWatch(InotifyWatch watch, bool ignored)
    {
        lock (gate)
        {
            if (!byDescriptor.Remove(watch.Descriptor))
            {
                return;
            }

            byKey.Remove(watch.Key);
        }

        registry.Remove(watch);
        if (ignored)
        {
            Queue(watch.Descriptor, InotifyMask.Ignored, 0, null);
        }
    }

    public void Queue(int wd, uint mask, uint cookie, string? name)
    {
        byte[] encoded = [];
        if (name is not null)
        {
            // The name with its NUL, padded to a multiple of the 16-byte header, as Linux.
            int length = Encoding.UTF8.GetByteCount(name) + 1;
            encoded = new byte[(length + 15) & ~15];
            Encoding.UTF8.GetBytes(name, encoded);
        }

        lock (gate)
        {
            if (overflowed)
            {
                return;
            }

            var item = new Event(wd, mask, cookie, encoded);
            if (queue.Last is { } last && last.Value.Wd == wd && last.Value.Mask == mask && last.Value.Cookie == cookie
                && last.Value.Name.AsSpan().SequenceEqual(encoded))
            {
                // Linux merges an event identical to the last one still queued.
                return;
            }

            if (queue.Count >= MaxQueued)
            {
                item = new Event(-1, InotifyMask.QueueOverflow, 0, []);
                overflowed = true;
            }

            queue.AddLast(item);
            queuedBytes += item.Size;
        }

        Waiters.Notify(PollEvents.In | PollEvents.ReadNormal);
    }

    public long Read(Span<byte> buffer, ref long offset)
    {
        int used = 0;
        lock (gate)
        {
            if (queue.Count == 0)
            {
                throw ErrnoException.Of(Errno.EAGAIN);
            }

            if (queue.First!.Value.Size > buffer.Length)
            {
                throw ErrnoException.Of(Errno.EINVAL);
            }

            while (queue.First is { } node && used + node.Value.Size <= buffer.Length)
            {
                var e = node.Value;
                var record = buffer.Slice(used, e.Size);
                BinaryPrimitives.WriteInt32LittleEndian(record, e.Wd);
                BinaryPrimitives.WriteUInt32LittleEndian(record[4..], e.Mask);
                BinaryPrimitives.WriteUInt32LittleEndian(record[8..], e.Cookie);
                BinaryPrimitives.WriteUInt32LittleEndian(record[12..], (uint)e.Name.Length);
                e.Name.CopyTo(record[16..]);
                used += e.Size;
                queuedBytes -= e.Size;
                queue.RemoveFirst();
                if (e.Mask == InotifyMask.QueueOverflow)
                {
                    overflowed = false;
                }
            }
        }

        return used;
    }

    public PollEvents Poll(PollEvents mask)
    {
        lock (gate)
        {
            return queue.Count > 0 ? mask & (PollEvents.In | PollEvents.ReadNormal) : 0;
        }
    }

    public long Ioctl(uint request, ulong argument, ISyscallContext context)
    {
        if (request == LinuxConstants.FIONREAD)
        {
            int bytes;
            lock (gate)
            {
                bytes = queuedBytes;
            }

            context.Memory.WriteValue(argument, bytes);
            return 0;
        }

        throw ErrnoException.Of(Errno.ENOTTY);
    }

    public void Release()
    {
        InotifyWatch[] all;
        lock (gate)
        {
            all = [.. byDescriptor.Values];
            byDescriptor.Clear();
            byKey.Clear();
            queue.Clear();
        }

        foreach (var watch in all)
        {
            registry.Remove(watch);
        }
    }
}
