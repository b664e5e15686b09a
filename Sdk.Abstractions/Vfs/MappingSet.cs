namespace AppKernel.Vfs;

/// <summary>An address space that maps files: it drops a file's pages when the file asks.</summary>
public interface IMappingSpace
{
    /// <summary>
    /// Removes from this address space every page of <paramref name="file"/> in
    /// [<paramref name="fileOffset"/>, <paramref name="fileOffset"/> + <paramref name="length"/>)
    /// (page-aligned file offsets): the platform unmaps them and their references are released, so
    /// the next touch faults them in again from the file (or, past its end, gets SIGBUS). Private
    /// copies a write already made are removed only when <paramref name="privateCopiesToo"/> (a
    /// truncation; a punched hole keeps them). Called without any file lock held.
    /// </summary>
    void DropFilePages(IMappable file, long fileOffset, long length, bool privateCopiesToo);
}

/// <summary>
/// The address spaces that map one file, counted per mapping piece, and how many of those pieces
/// are shared mappings that could write (Linux's i_mmap_writable). Thread-safe. A file with no
/// mappings pays one volatile read in <see cref="DropPages"/>.
/// </summary>
/// <remarks>
/// Lock order: an address space attaches and detaches under its own lock, and the set's lock is
/// taken last. <see cref="DropPages"/> takes a snapshot under the set's lock and then calls each
/// address space with no lock held, so a file must call it after releasing its own locks (a fault
/// holds the address space's lock while it asks the file for pages).
/// </remarks>
public sealed class MappingSet(IMappable file)
{
    private readonly object gate = new();
    private readonly Dictionary<IMappingSpace, int> spaces = new(ReferenceEqualityComparer.Instance);
    private IMappingSpace[]? snapshot;
    private long version;
    private int pieces;
    private int writable;
    private bool writesDenied;

    /// <summary>True when no address space maps the file.</summary>
    public bool IsEmpty => Volatile.Read(ref pieces) == 0;

    /// <summary>How many mapping pieces are shared and may write (for tests and diagnostics).</summary>
    public int WritableSharedCount
    {
        get
        {
            lock (gate)
            {
                return writable;
            }
        }
    }

    /// <summary>
    /// A new mapping piece in <paramref name="space"/>. False (nothing attached) when
    /// <paramref name="writableShared"/> and writable shared mappings are denied
    /// (<see cref="TryDenyWritable"/>): the caller fails the mmap with EPERM.
    /// </summary>
    public bool TryAttach(IMappingSpace space, bool writableShared)
    {
        lock (gate)
        {
            if (writableShared && writesDenied)
            {
                return false;
            }

            AttachLocked(space, writableShared);
            return true;
        }
    }

    /// <summary>A mapping piece that copies an attached one (a split, a fork): never refused.</summary>
    public void Attach(IMappingSpace space, bool writableShared)
    {
        lock (gate)
        {
            AttachLocked(space, writableShared);
        }
    }

    /// <summary>A mapping piece of <paramref name="space"/> is gone (unmapped, merged into its neighbour).</summary>
    public void Detach(IMappingSpace space, bool writableShared)
    {
        lock (gate)
        {
            if (!spaces.TryGetValue(space, out int count))
            {
                return;
            }

            if (count == 1)
            {
                spaces.Remove(space);
                snapshot = null;
            }
            else
            {
                spaces[space] = count - 1;
            }

            Volatile.Write(ref pieces, pieces - 1);
            if (writableShared)
            {
                writable--;
            }
        }
    }

    /// <summary>
    /// F_SEAL_WRITE: from now on no writable shared mapping may be made. False (and nothing changes)
    /// while one exists, which the caller reports as EBUSY.
    /// </summary>
    public bool TryDenyWritable()
    {
        lock (gate)
        {
            if (writable > 0)
            {
                return false;
            }

            writesDenied = true;
            return true;
        }
    }

    /// <summary>
    /// Makes every address space drop the file's pages in [<paramref name="fileOffset"/>,
    /// <paramref name="fileOffset"/> + <paramref name="length"/>) (see
    /// <see cref="IMappingSpace.DropFilePages"/>). Call it after the file's own state changed (the
    /// new size is visible, the pages left the file) and with no file lock held. Address spaces
    /// that attach meanwhile (a fork of one not yet visited) are visited too.
    /// </summary>
    public void DropPages(long fileOffset, long length, bool privateCopiesToo)
    {
        if (IsEmpty || length <= 0)
        {
            return;
        }

        HashSet<IMappingSpace>? visited = null;
        while (true)
        {
            IMappingSpace[] targets;
            long seen;
            lock (gate)
            {
                targets = snapshot ??= [.. spaces.Keys];
                seen = version;
            }

            foreach (var space in targets)
            {
                visited ??= new HashSet<IMappingSpace>(ReferenceEqualityComparer.Instance);
                if (visited.Add(space))
                {
                    space.DropFilePages(file, fileOffset, length, privateCopiesToo);
                }
            }

            lock (gate)
            {
                if (version == seen)
                {
                    return;
                }
            }
        }
    }

    private void AttachLocked(IMappingSpace space, bool writableShared)
    {
        if (spaces.TryGetValue(space, out int count))
        {
            spaces[space] = count + 1;
        }
        else
        {
            spaces.Add(space, 1);
            snapshot = null;
            version++;
        }

        Volatile.Write(ref pieces, pieces + 1);
        if (writableShared)
        {
            writable++;
        }
    }
}
