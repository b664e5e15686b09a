using AppKernel.Sentry.Memory;
using AppKernel.Vfs;

namespace AppKernel.Sentry.Vfs;

/// <summary>
/// An open file description (Linux's struct file): the file's operations, the path it was
/// opened by, status flags and the offset, shared by every fd that dup'ed it and every
/// mapping made from it. Released when the last reference goes.
/// </summary>
internal sealed class FileDescription : IMappingOwner
{
    /// <summary>Status flags F_SETFL may change.</summary>
    public const OpenFlags SettableFlags = OpenFlags.Append | OpenFlags.Async | OpenFlags.Direct | OpenFlags.NoAccessTime | OpenFlags.NonBlocking;

    private int references = 1;
    private IDescriptionWatcher[] watchers = [];

    public FileDescription(IFileOperations operations, VfsPath? path, OpenFlags flags, string name)
    {
        Operations = operations;
        Path = path;
        Flags = flags & ~(OpenFlags.Create | OpenFlags.Exclusive | OpenFlags.NoControllingTty | OpenFlags.Truncate | OpenFlags.CloseOnExec);
        Name = name;
    }

    public IFileOperations Operations { get; }

    /// <summary>The path it was opened by; null for pipes, sockets and anonymous files.</summary>
    public VfsPath? Path { get; }

    public OpenFlags Flags { get; set; }

    /// <summary>The name /proc/PID/fd shows for anonymous files (pipe:[N], socket:[N], anon_inode:[eventfd]).</summary>
    public string Name { get; }

    /// <summary>Serialises offset updates (read/write/lseek on a shared description).</summary>
    public object OffsetLock { get; } = new();

    public long Offset;

    /// <summary>Set for descriptions opened by path: reads, writes and the last close are reported to inotify.</summary>
    public InotifyRegistry? Notify { get; set; }

    /// <summary>Set once the description holds flock or OFD locks: they go with its last reference.</summary>
    public FileLockTable? LockTable { get; set; }

    /// <summary>The owner F_SETOWN/F_SETOWN_EX (or a socket's FIOSETOWN/SIOCSPGRP) set: SIGURG's target; null when none.</summary>
    public FileSignalOwner? SignalOwner { get; set; }

    public bool CanRead => Flags.CanRead();

    public bool CanWrite => Flags.CanWrite();

    public bool IsPathOnly => (Flags & OpenFlags.Path) != 0;

    public bool NonBlocking => (Flags & OpenFlags.NonBlocking) != 0;

    public FileDescription AddReference()
    {
        Interlocked.Increment(ref references);
        return this;
    }

    /// <summary>
    /// Asks to hear when the last reference goes (epoll's interest lists hold descriptions without
    /// a reference and drop them then, as Linux's eventpoll_release does). Registering twice is a no-op.
    /// </summary>
    public void AddWatcher(IDescriptionWatcher watcher)
    {
        // Copy-on-write with compare-and-swap: no lock on a path that reads and writes also use.
        while (true)
        {
            var current = Volatile.Read(ref watchers);
            if (Array.IndexOf(current, watcher) >= 0)
            {
                return;
            }

            if (Interlocked.CompareExchange(ref watchers, [.. current, watcher], current) == current)
            {
                return;
            }
        }
    }

    /// <summary>Who watches the description now (an epoll instance's parents in a nest of epolls).</summary>
    public IDescriptionWatcher[] Watchers => Volatile.Read(ref watchers);

    public void RemoveWatcher(IDescriptionWatcher watcher)
    {
        while (true)
        {
            var current = Volatile.Read(ref watchers);
            int index = Array.IndexOf(current, watcher);
            if (index < 0)
            {
                return;
            }

            if (Interlocked.CompareExchange(ref watchers, [.. current[..index], .. current[(index + 1)..]], current) == current)
            {
                return;
            }
        }
    }

    public void Release()
    {
        int left = Interlocked.Decrement(ref references);
        if (left == 0)
        {
            foreach (var watcher in Interlocked.Exchange(ref watchers, []))
            {
                watcher.DescriptionReleased(this);
            }

            LockTable?.ReleaseDescription(this);
            if (Notify is { Active: true } notify && Path is { } path)
            {
                notify.FileEvent(path, path.Inode, CanWrite ? InotifyMask.CloseWrite : InotifyMask.CloseNoWrite);
            }

            Operations.Release();
        }
        else if (left < 0)
        {
            throw new InvalidOperationException($"file description {Name} released too often");
        }
    }

    void IMappingOwner.AddMappingReference() => AddReference();

    void IMappingOwner.DropMappingReference() => Release();
}

/// <summary>Something that refers to a <see cref="FileDescription"/> without holding a reference (an epoll instance).</summary>
internal interface IDescriptionWatcher
{
    /// <summary>The description's last reference went; called once, before its operations are released.</summary>
    void DescriptionReleased(FileDescription description);
}
