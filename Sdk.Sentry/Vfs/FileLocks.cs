using AppKernel.Sentry.Kernel;
using AppKernel.Vfs;

namespace AppKernel.Sentry.Vfs;

/// <summary>The kind of an advisory lock: Linux's F_RDLCK, F_WRLCK and F_UNLCK.</summary>
internal enum LockType : short
{
    Read = 0,
    Write = 1,
    Unlock = 2,
}

/// <summary>
/// A sandbox's advisory file locks (flock, POSIX record locks, OFD locks), kept per file: keyed
/// by the file's filesystem and inode number, so every description of one file (any process,
/// any path, gofer and overlay files included) meets the same locks. One gate serialises every
/// change; blocked requests sleep on the file's wait queue, interruptible by signals.
/// </summary>
internal sealed class FileLockTable
{
    private readonly object gate = new();
    private readonly Dictionary<object, FileLocks> files = new();

    // POSIX owners (fd tables) blocked in F_SETLKW, and the owner each waits for: the graph
    // EDEADLK detection walks, as Linux's blocked_hash.
    private readonly Dictionary<object, object> waitingFor = new(ReferenceEqualityComparer.Instance);

    // The files each POSIX owner (fd table) holds record locks in, so a close by an owner that
    // holds none costs no lookup of the closed file's inode.
    private readonly Dictionary<object, HashSet<object>> posixHeld = new(ReferenceEqualityComparer.Instance);

    /// <summary>The lock key of the file a description refers to.</summary>
    public static object KeyOf(FileDescription description)
    {
        var inode = description.Path?.Inode ?? description.Operations.Inode;
        if (inode is not null)
        {
            return new InodeKey(inode.FileSystem, inode.GetAttributes().Ino);
        }

        return description.Operations is PipeEnd end ? end.Pipe : description.Operations;
    }

    private FileLocks Get(object key)
    {
        if (!files.TryGetValue(key, out var locks))
        {
            locks = new FileLocks(key);
            files[key] = locks;
        }

        return locks;
    }

    private void Forget(FileLocks locks)
    {
        if (locks.IsEmpty && !locks.Waiters.HasListeners && locks.Sleepers == 0)
        {
            files.Remove(locks.Key);
        }
    }

    /// <summary>flock(2): a whole-file lock owned by the open file description.</summary>
    public void Flock(KernelTask task, FileDescription description, LockType type, bool wait)
    {
        var key = KeyOf(description);
        FileLocks locks;
        lock (gate)
        {
            locks = Get(key);

            // Converting a lock drops the old one first, as Linux does: a blocked conversion
            // does not keep the lock it had.
            int index = locks.Flocks.FindIndex(l => ReferenceEquals(l.Owner, description));
            if (index >= 0)
            {
                if (locks.Flocks[index].Type == type)
                {
                    return;
                }

                locks.Flocks.RemoveAt(index);
                locks.Waiters.Notify(PollEvents.In);
            }

            if (type == LockType.Unlock)
            {
                Forget(locks);
                return;
            }

            if (TryFlock(locks, description, type))
            {
                description.LockTable = this;
                return;
            }

            if (!wait)
            {
                Forget(locks);
                throw ErrnoException.Of(Errno.EAGAIN);
            }

            locks.Sleepers++;
        }

        try
        {
            task.WaitUntil(locks.Waiters, PollEvents.In, () =>
            {
                lock (gate)
                {
                    if (!TryFlock(locks, description, type))
                    {
                        return false;
                    }

                    description.LockTable = this;
                    return true;
                }
            });
        }
        finally
        {
            lock (gate)
            {
                locks.Sleepers--;
                Forget(locks);
            }
        }
    }

    private static bool TryFlock(FileLocks locks, FileDescription description, LockType type)
    {
        foreach (var held in locks.Flocks)
        {
            if (!ReferenceEquals(held.Owner, description) && (type == LockType.Write || held.Type == LockType.Write))
            {
                return false;
            }
        }

        locks.Flocks.Add(new RecordLock(description, 0, 0, long.MaxValue, type, Ofd: false));
        return true;
    }

    /// <summary>
    /// F_SETLK/F_SETLKW/F_OFD_SETLK/F_OFD_SETLKW: sets or clears [start, end] for
    /// <paramref name="owner"/> (the fd table for POSIX locks, the description for OFD locks).
    /// </summary>
    public void SetRecord(KernelTask task, FileDescription description, object owner, bool ofd, LockType type, long start, long end, bool wait)
    {
        var key = KeyOf(description);
        FileLocks locks;
        lock (gate)
        {
            locks = Get(key);
            var conflict = type == LockType.Unlock ? null : FindConflict(locks, owner, type, start, end);
            if (conflict is null)
            {
                Apply(locks, owner, ofd, type, start, end, task.Pid);
                Note(description, owner, ofd, type);
                TrackPosix(locks, owner, ofd);
                Forget(locks);
                return;
            }

            if (!wait)
            {
                Forget(locks);
                throw ErrnoException.Of(Errno.EAGAIN);
            }

            if (!ofd && WouldDeadlock(owner, conflict))
            {
                Forget(locks);
                throw ErrnoException.Of(Errno.EDEADLK);
            }

            locks.Sleepers++;
        }

        try
        {
            task.WaitUntil(locks.Waiters, PollEvents.In, () =>
            {
                lock (gate)
                {
                    var blocker = FindConflict(locks, owner, type, start, end);
                    if (blocker is null)
                    {
                        waitingFor.Remove(owner);
                        Apply(locks, owner, ofd, type, start, end, task.Pid);
                        Note(description, owner, ofd, type);
                        TrackPosix(locks, owner, ofd);
                        return true;
                    }

                    if (!ofd)
                    {
                        if (WouldDeadlock(owner, blocker))
                        {
                            waitingFor.Remove(owner);
                            throw ErrnoException.Of(Errno.EDEADLK);
                        }

                        waitingFor[owner] = blocker.Owner;
                    }

                    return false;
                }
            });
        }
        finally
        {
            lock (gate)
            {
                if (!ofd)
                {
                    waitingFor.Remove(owner);
                }

                locks.Sleepers--;
                Forget(locks);
            }
        }
    }

    /// <summary>F_GETLK/F_OFD_GETLK: the first lock that would block the request, or null.</summary>
    public RecordLock? Test(FileDescription description, object owner, LockType type, long start, long end)
    {
        lock (gate)
        {
            return files.TryGetValue(KeyOf(description), out var locks) ? FindConflict(locks, owner, type, start, end) : null;
        }
    }

    /// <summary>A close by <paramref name="owner"/> (an fd table) drops its POSIX locks on the file, as Linux's locks_remove_posix.</summary>
    public void RemovePosix(FileDescription description, object owner)
    {
        lock (gate)
        {
            if (!posixHeld.ContainsKey(owner))
            {
                return;
            }

            if (files.TryGetValue(KeyOf(description), out var locks) && locks.Records.RemoveAll(l => !l.Ofd && ReferenceEquals(l.Owner, owner)) > 0)
            {
                TrackPosix(locks, owner, ofd: false);
                locks.Waiters.Notify(PollEvents.In);
                Forget(locks);
            }
        }
    }

    /// <summary>The last reference to a description went: its flock and OFD locks go.</summary>
    public void ReleaseDescription(FileDescription description)
    {
        lock (gate)
        {
            if (!files.TryGetValue(KeyOf(description), out var locks))
            {
                return;
            }

            int removed = locks.Flocks.RemoveAll(l => ReferenceEquals(l.Owner, description))
                + locks.Records.RemoveAll(l => l.Ofd && ReferenceEquals(l.Owner, description));
            if (removed > 0)
            {
                locks.Waiters.Notify(PollEvents.In);
            }

            Forget(locks);
        }
    }

    /// <summary>Whether the table still tracks the file (for tests).</summary>
    public int TrackedFiles
    {
        get
        {
            lock (gate)
            {
                return files.Count;
            }
        }
    }

    // Keeps posixHeld true to the owner's records in the file.
    private void TrackPosix(FileLocks locks, object owner, bool ofd)
    {
        if (ofd)
        {
            return;
        }

        bool holds = locks.Records.Exists(l => !l.Ofd && ReferenceEquals(l.Owner, owner));
        if (holds)
        {
            if (!posixHeld.TryGetValue(owner, out var held))
            {
                posixHeld[owner] = held = [];
            }

            held.Add(locks.Key);
        }
        else if (posixHeld.TryGetValue(owner, out var held) && held.Remove(locks.Key) && held.Count == 0)
        {
            posixHeld.Remove(owner);
        }
    }

    // Remembers who must tell the table when it goes: the description (OFD locks, at its last
    // release) or the fd table (POSIX locks, at each close).
    private void Note(FileDescription description, object owner, bool ofd, LockType type)
    {
        if (type == LockType.Unlock)
        {
            return;
        }

        if (ofd)
        {
            description.LockTable = this;
        }
        else if (owner is FdTable table)
        {
            table.PosixLockTable = this;
        }
    }

    private static RecordLock? FindConflict(FileLocks locks, object owner, LockType type, long start, long end)
    {
        foreach (var held in locks.Records)
        {
            if (!ReferenceEquals(held.Owner, owner) && held.Start <= end && start <= held.End
                && (type == LockType.Write || held.Type == LockType.Write))
            {
                return held;
            }
        }

        return null;
    }

    // Follows the chain of blocked POSIX owners from the holder of the conflicting lock: reaching
    // the requester means sleeping would never end. Linux gives up after 10 steps.
    private bool WouldDeadlock(object requester, RecordLock blocker)
    {
        if (blocker.Ofd)
        {
            return false;
        }

        object current = blocker.Owner;
        for (int i = 0; i < 10; i++)
        {
            if (ReferenceEquals(current, requester))
            {
                return true;
            }

            if (!waitingFor.TryGetValue(current, out var next))
            {
                return false;
            }

            current = next;
        }

        return false;
    }

    // Replaces the owner's locks in [start, end] with the request, merging same-type neighbours
    // and splitting locks of the other type, as Linux's posix_lock_inode.
    private static void Apply(FileLocks locks, object owner, bool ofd, LockType type, long start, long end, int pid)
    {
        var kept = new List<RecordLock>(locks.Records.Count + 2);
        bool changed = false;
        if (type != LockType.Unlock)
        {
            foreach (var held in locks.Records)
            {
                if (ReferenceEquals(held.Owner, owner) && held.Type == type && Touches(held, start, end))
                {
                    start = Math.Min(start, held.Start);
                    end = Math.Max(end, held.End);
                }
            }
        }

        foreach (var held in locks.Records)
        {
            if (!ReferenceEquals(held.Owner, owner) || held.End < start || held.Start > end)
            {
                kept.Add(held);
                continue;
            }

            changed = true;
            if (held.Start < start)
            {
                kept.Add(held with { End = start - 1 });
            }

            if (held.End > end)
            {
                kept.Add(held with { Start = end + 1 });
            }
        }

        if (type != LockType.Unlock)
        {
            kept.Add(new RecordLock(owner, pid, start, end, type, ofd));
            changed = true;
        }

        kept.Sort((a, b) => a.Start.CompareTo(b.Start));
        locks.Records.Clear();
        locks.Records.AddRange(kept);
        if (changed)
        {
            locks.Waiters.Notify(PollEvents.In);
        }
    }

    private static bool Touches(RecordLock held, long start, long end) =>
        (held.End >= start || (start > 0 && held.End == start - 1)) && (held.Start <= end || (end < long.MaxValue && held.Start == end + 1));

    private sealed record InodeKey(IFileSystem FileSystem, ulong Ino)
    {
        public bool Equals(InodeKey? other) => other is not null && ReferenceEquals(FileSystem, other.FileSystem) && Ino == other.Ino;

        public override int GetHashCode() => HashCode.Combine(System.Runtime.CompilerServices.RuntimeHelpers.GetHashCode(FileSystem), Ino);
    }
}

/// <summary>One lock: its owner (fd table, or description for OFD and flock locks), the pid F_GETLK reports, and the byte range [Start, End].</summary>
internal sealed record RecordLock(object Owner, int Pid, long Start, long End, LockType Type, bool Ofd);

/// <summary>The locks of one file.</summary>
internal sealed class FileLocks(object key)
{
    public object Key { get; } = key;

    /// <summary>flock locks (whole file, one per description).</summary>
    public List<RecordLock> Flocks { get; } = [];

    /// <summary>POSIX and OFD record locks, sorted by start; one owner's never overlap.</summary>
    public List<RecordLock> Records { get; } = [];

    /// <summary>Requests sleeping until a lock goes.</summary>
    public WaitQueue Waiters { get; } = new();

    /// <summary>Tasks between deciding to sleep and leaving the wait (keeps the entry alive).</summary>
    public int Sleepers;

    public bool IsEmpty => Flocks.Count == 0 && Records.Count == 0;
}
