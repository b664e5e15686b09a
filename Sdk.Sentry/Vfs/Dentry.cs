using AppKernel.Vfs;

namespace AppKernel.Sentry.Vfs;

/// <summary>
/// A name in the dentry cache: one per (parent, name) of a filesystem instance, holding the
/// inode the name resolves to. Looked-up children are cached, absent names too (as null) for
/// filesystems whose names only change through the VFS.
/// </summary>
internal sealed class Dentry
{
    private Dictionary<string, (Dentry? Child, long ExpiresAt)>? children;

    public Dentry(string name, Dentry? parent, IInode inode)
    {
        Name = name;
        Parent = parent;
        Inode = inode;
    }

    public string Name { get; private set; }

    /// <summary>The parent in the same filesystem, null for a filesystem's root.</summary>
    public Dentry? Parent { get; private set; }

    public IInode Inode { get; }

    /// <summary>Unlinked or renamed away: /proc shows " (deleted)", lookups no longer find it.</summary>
    public bool Deleted { get; set; }

    /// <summary>How many mounts sit on this dentry (it is a mount point when above zero).</summary>
    public int MountCount { get; set; }

    /// <summary>
    /// The cached child for <paramref name="name"/>: true if the cache knows (the child may be
    /// null: absent). <paramref name="expiresAt"/> is when the entry stops being trusted
    /// (a <see cref="System.Diagnostics.Stopwatch"/> timestamp; <see cref="long.MaxValue"/> for never).
    /// </summary>
    public bool TryGetCached(string name, out Dentry? child, out long expiresAt)
    {
        if (children is not null && children.TryGetValue(name, out var entry))
        {
            child = entry.Child;
            expiresAt = entry.ExpiresAt;
            return true;
        }

        child = null;
        expiresAt = 0;
        return false;
    }

    /// <summary>Caches <paramref name="child"/> (null: absent) for <paramref name="name"/> until <paramref name="expiresAt"/>.</summary>
    public void Cache(string name, Dentry? child, long expiresAt = long.MaxValue)
    {
        children ??= new Dictionary<string, (Dentry?, long)>(StringComparer.Ordinal);
        children[name] = (child, expiresAt);
    }

    public void Forget(string name) => children?.Remove(name);

    /// <summary>Moves this dentry under <paramref name="parent"/> as <paramref name="name"/> (rename).</summary>
    public void MoveTo(Dentry parent, string name)
    {
        Parent = parent;
        Name = name;
    }

    public override string ToString() => Name;
}
