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

    public bool CanRead => Flags.CanRead();

    public bool CanWrite => Flags.CanWrite();

    public bool IsPathOnly => (Flags & OpenFlags.Path) != 0;

    public bool NonBlocking => (Flags & OpenFlags.NonBlocking) != 0;

    public FileDescription AddReference()
    {
        Interlocked.Increment(ref references);
        return this;
    }

    public void Release()
    {
        int left = Interlocked.Decrement(ref references);
        if (left == 0)
        {
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
