namespace AppKernel.Sentry.Vfs;

/// <summary>A process's file descriptor table; shared between tasks cloned with CLONE_FILES.</summary>
internal sealed class FdTable
{
    private readonly object gate = new();
    private Slot[] slots = new Slot[64];
    private int users = 1;

    /// <summary>
    /// Set once the table (the POSIX lock owner, as Linux's files_struct) has held record locks:
    /// every close then drops its locks on the closed file.
    /// </summary>
    public FileLockTable? PosixLockTable { get; set; }

    private void Closing(FileDescription description)
    {
        PosixLockTable?.RemovePosix(description, this);
        description.Release();
    }

    private record struct Slot(FileDescription? Description, bool CloseOnExec);

    /// <summary>Another task shares the table (CLONE_FILES).</summary>
    public FdTable AddUser()
    {
        Interlocked.Increment(ref users);
        return this;
    }

    /// <summary>A task stops using the table; the last one closes every fd.</summary>
    public void RemoveUser()
    {
        if (Interlocked.Decrement(ref users) == 0)
        {
            CloseAll();
        }
    }

    /// <summary>Installs at the lowest free number at or above <paramref name="minimum"/>; EMFILE at <paramref name="limit"/>.</summary>
    public int Install(FileDescription description, bool closeOnExec, int limit, int minimum = 0)
    {
        lock (gate)
        {
            for (int fd = minimum; fd < limit; fd++)
            {
                if (fd >= slots.Length)
                {
                    Grow(fd);
                }

                if (slots[fd].Description is null)
                {
                    slots[fd] = new Slot(description, closeOnExec);
                    return fd;
                }
            }

            throw ErrnoException.Of(Errno.EMFILE);
        }
    }

    /// <summary>dup2/dup3: puts <paramref name="description"/> at <paramref name="fd"/>, closing what was there.</summary>
    public void InstallAt(int fd, FileDescription description, bool closeOnExec, int limit)
    {
        if (fd < 0 || fd >= limit)
        {
            throw ErrnoException.Of(Errno.EBADF);
        }

        FileDescription? old;
        lock (gate)
        {
            if (fd >= slots.Length)
            {
                Grow(fd);
            }

            old = slots[fd].Description;
            slots[fd] = new Slot(description, closeOnExec);
        }

        if (old is not null)
        {
            Closing(old);
        }
    }

    public FileDescription Get(int fd) => TryGet(fd, out var description) ? description : throw ErrnoException.Of(Errno.EBADF);

    public bool TryGet(int fd, out FileDescription description)
    {
        lock (gate)
        {
            if ((uint)fd < (uint)slots.Length && slots[fd].Description is { } d)
            {
                description = d;
                return true;
            }
        }

        description = null!;
        return false;
    }

    /// <summary>Takes a reference for use outside the table lock (the fd may be closed meanwhile).</summary>
    public FileDescription GetReferenced(int fd) => Get(fd).AddReference();

    public bool GetCloseOnExec(int fd)
    {
        lock (gate)
        {
            return (uint)fd < (uint)slots.Length && slots[fd].Description is not null
                ? slots[fd].CloseOnExec
                : throw ErrnoException.Of(Errno.EBADF);
        }
    }

    public void SetCloseOnExec(int fd, bool value)
    {
        lock (gate)
        {
            if ((uint)fd >= (uint)slots.Length || slots[fd].Description is null)
            {
                throw ErrnoException.Of(Errno.EBADF);
            }

            slots[fd] = slots[fd] with { CloseOnExec = value };
        }
    }

    public void Close(int fd)
    {
        FileDescription? old;
        lock (gate)
        {
            if ((uint)fd >= (uint)slots.Length || slots[fd].Description is null)
            {
                throw ErrnoException.Of(Errno.EBADF);
            }

            old = slots[fd].Description;
            slots[fd] = default;
        }

        Closing(old!);
    }

    /// <summary>close_range: closes (or marks close-on-exec) every open fd in [first, last].</summary>
    public void CloseRange(uint first, uint last, bool onlySetCloseOnExec)
    {
        var closed = new List<FileDescription>();
        lock (gate)
        {
            for (long fd = first; fd <= last && fd < slots.Length; fd++)
            {
                if (slots[fd].Description is { } d)
                {
                    if (onlySetCloseOnExec)
                    {
                        slots[fd] = slots[fd] with { CloseOnExec = true };
                    }
                    else
                    {
                        closed.Add(d);
                        slots[fd] = default;
                    }
                }
            }
        }

        foreach (var d in closed)
        {
            Closing(d);
        }
    }

    /// <summary>At execve: closes every close-on-exec fd.</summary>
    public void CloseOnExecute()
    {
        var closed = new List<FileDescription>();
        lock (gate)
        {
            for (int fd = 0; fd < slots.Length; fd++)
            {
                if (slots[fd] is { Description: { } d, CloseOnExec: true })
                {
                    closed.Add(d);
                    slots[fd] = default;
                }
            }
        }

        foreach (var d in closed)
        {
            Closing(d);
        }
    }

    public void CloseAll() => CloseRange(0, uint.MaxValue, onlySetCloseOnExec: false);

    /// <summary>A copy for fork (no CLONE_FILES): every description gains a reference.</summary>
    public FdTable Fork()
    {
        var copy = new FdTable();
        lock (gate)
        {
            copy.slots = new Slot[slots.Length];
            for (int fd = 0; fd < slots.Length; fd++)
            {
                if (slots[fd].Description is { } d)
                {
                    copy.slots[fd] = new Slot(d.AddReference(), slots[fd].CloseOnExec);
                }
            }
        }

        return copy;
    }

    /// <summary>The open fds and their descriptions, in order (for /proc/PID/fd).</summary>
    public List<(int Fd, FileDescription Description)> Snapshot()
    {
        var list = new List<(int, FileDescription)>();
        lock (gate)
        {
            for (int fd = 0; fd < slots.Length; fd++)
            {
                if (slots[fd].Description is { } d)
                {
                    list.Add((fd, d));
                }
            }
        }

        return list;
    }

    /// <summary>The table's size (Linux's fdt->max_fds): select clamps its nfds to it.</summary>
    public int Capacity
    {
        get
        {
            lock (gate)
            {
                return slots.Length;
            }
        }
    }

    public int Count
    {
        get
        {
            lock (gate)
            {
                int n = 0;
                foreach (var s in slots)
                {
                    if (s.Description is not null)
                    {
                        n++;
                    }
                }

                return n;
            }
        }
    }

    private void Grow(int fd)
    {
        int size = slots.Length;
        while (size <= fd)
        {
            size *= 2;
        }

        Array.Resize(ref slots, size);
    }
}
