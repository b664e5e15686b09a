using System.Diagnostics;
using AppKernel.Sentry.Abi;
using AppKernel.Sentry.Kernel;
using AppKernel.Vfs;

namespace AppKernel.Sentry.Vfs;

/// <summary>Who resolves a path and from where.</summary>
/// <param name="Credentials">For search permission on directories.</param>
/// <param name="Root">The task's root: absolute paths start here and ".." stops here.</param>
/// <param name="Start">Where relative paths start (cwd or a dirfd).</param>
/// <param name="Task">The task, for procfs magic links; null for the Sentry's own lookups.</param>
internal readonly record struct PathContext(Credentials Credentials, VfsPath Root, VfsPath Start, KernelTask? Task)
{
    /// <summary>openat2's RESOLVE_* restrictions (none for every other lookup).</summary>
    public ResolveFlags Flags { get; init; }

    /// <summary>A missing component ends the walk with <see cref="Resolution.IsMissing"/> instead of throwing ENOENT (see <see cref="VirtualFileSystem.TryResolve"/>).</summary>
    public bool ReportMissing { get; init; }
}

/// <summary>openat2's RESOLVE_* bits.</summary>
[Flags]
internal enum ResolveFlags : ulong
{
    None = 0,
    NoCrossDevice = 1,
    NoMagicLinks = 2,
    NoSymlinks = 4,
    Beneath = 8,
    InRoot = 0x10,
    Cached = 0x20,
}

/// <summary>The outcome of a path walk: a path, or (through a procfs magic link) an open description with no path.</summary>
internal readonly record struct Resolution(VfsPath Path, FileDescription? Description)
{
    public IInode Inode => Description?.Operations.Inode ?? Path.Inode;

    /// <summary>A walk with <see cref="PathContext.ReportMissing"/> met a name that does not exist.</summary>
    public bool IsMissing => Description is null && Path.Mount is null;
}

/// <summary>
/// The sandbox's mount tree and path walk: mounts, the dentry cache, symlinks (ELOOP after 40),
/// ".." clamped at the task's root, mount crossing, trailing-slash rules, ENAMETOOLONG.
/// </summary>
internal sealed partial class VirtualFileSystem
{
    private readonly object mountGate = new();
    private readonly Dictionary<(Mount, Dentry), Mount> mountsByPoint = new();
    private readonly Dictionary<IFileSystem, Dentry> rootDentries = new(ReferenceEqualityComparer.Instance);
    private readonly List<Mount> mounts = new();
    private int nextMountId = 1;
    private uint nextDeviceMinor = 16;
    private Mount? root;

    /// <summary>Serialises namespace changes (create, unlink, rename, link, mount) so they compose atomically.</summary>
    public object NamespaceLock { get; } = new();

    /// <summary>The sandbox's inotify watches, told of every change made through the VFS.</summary>
    public InotifyRegistry Inotify { get; } = new();

    public Mount RootMount => root ?? throw new InvalidOperationException("no root filesystem mounted");

    public VfsPath RootPath => new(RootMount, RootMount.Root);

    public IReadOnlyList<Mount> Mounts
    {
        get
        {
            lock (mountGate)
            {
                return mounts.ToArray();
            }
        }
    }

    /// <summary>Mounts <paramref name="fileSystem"/> as the root of the tree.</summary>
    public Mount MountRoot(IFileSystem fileSystem, string source, bool readOnly)
    {
        lock (mountGate)
        {
            if (root is not null)
            {
                throw new InvalidOperationException("the root is already mounted");
            }

            root = NewMount(fileSystem, source, readOnly);
            mounts.Add(root);
            return root;
        }
    }

    /// <summary>Mounts <paramref name="fileSystem"/> on the directory <paramref name="target"/>.</summary>
    public Mount MountAt(VfsPath target, IFileSystem fileSystem, string source, bool readOnly)
    {
        if (!target.Inode.GetAttributes().Mode.IsDirectory())
        {
            throw ErrnoException.Of(Errno.ENOTDIR);
        }

        lock (mountGate)
        {
            var mount = NewMount(fileSystem, source, readOnly);
            mount.Parent = target.Mount;
            mount.MountPoint = target.Dentry;
            target.Dentry.MountCount++;
            mountsByPoint[(target.Mount, target.Dentry)] = mount;
            mounts.Add(mount);
            return mount;
        }
    }

    /// <summary>
    /// umount2: detaches the mount whose root <paramref name="target"/> is. EINVAL when it is not a
    /// mount's root; EBUSY for the root mount, and, unless <paramref name="detach"/>, when mounts sit
    /// on it or <paramref name="inUse"/> says files, working directories or roots are on it. A lazy
    /// detach takes the mounts on it along.
    /// </summary>
    public void Unmount(VfsPath target, bool detach, Func<Mount, bool> inUse)
    {
        var mount = target.Mount;
        if (target.Dentry != mount.Root)
        {
            throw ErrnoException.Of(Errno.EINVAL);
        }

        lock (mountGate)
        {
            if (mount.Parent is null || mount.MountPoint is null)
            {
                throw ErrnoException.Of(Errno.EBUSY);
            }

            var below = new List<Mount>();
            CollectBelow(mount, below);
            if (!detach && (below.Count > 0 || inUse(mount)))
            {
                throw ErrnoException.Of(Errno.EBUSY);
            }

            below.Reverse();
            foreach (var m in below.Append(mount))
            {
                mountsByPoint.Remove((m.Parent!, m.MountPoint!));
                m.MountPoint!.MountCount--;
                mounts.Remove(m);
                if (!mounts.Exists(other => ReferenceEquals(other.FileSystem, m.FileSystem)))
                {
                    rootDentries.Remove(m.FileSystem);
                    m.FileSystem.Release();
                }
            }
        }
    }

    private void CollectBelow(Mount mount, List<Mount> found)
    {
        foreach (var child in mounts)
        {
            if (child.Parent == mount)
            {
                found.Add(child);
                CollectBelow(child, found);
            }
        }
    }

    private Mount NewMount(IFileSystem fileSystem, string source, bool readOnly)
    {
        if (!rootDentries.TryGetValue(fileSystem, out var rootDentry))
        {
            rootDentry = new Dentry("/", null, fileSystem.Root);
            rootDentries[fileSystem] = rootDentry;
        }

        return new Mount(nextMountId++, fileSystem, rootDentry, nextDeviceMinor++, source, readOnly);
    }

    /// <summary>Resolves <paramref name="path"/>; <paramref name="followFinal"/> follows a final symlink.</summary>
    public Resolution Resolve(in PathContext context, string path, bool followFinal)
    {
        if (path.Length == 0)
        {
            throw ErrnoException.Of(Errno.ENOENT);
        }

        if (path.Length >= LinuxConstants.PathMax)
        {
            throw ErrnoException.Of(Errno.ENAMETOOLONG);
        }

        int symlinks = 0;
        var resolution = Walk(context, path[0] == '/' ? context.Root : context.Start, path, followFinal, ref symlinks);
        return resolution.IsMissing ? throw ErrnoException.Of(Errno.ENOENT) : resolution;
    }

    /// <summary>
    /// <see cref="Resolve"/>, except that a missing name (ENOENT, the everyday failure of stat,
    /// access and open) returns false instead of throwing: a .NET exception costs more than the
    /// rest of a cached lookup. Other errors still throw.
    /// </summary>
    public bool TryResolve(in PathContext context, string path, bool followFinal, out Resolution resolution)
    {
        if (path.Length == 0)
        {
            resolution = default;
            return false;
        }

        if (path.Length >= LinuxConstants.PathMax)
        {
            throw ErrnoException.Of(Errno.ENAMETOOLONG);
        }

        int symlinks = 0;
        var reporting = context with { ReportMissing = true };
        resolution = Walk(reporting, path[0] == '/' ? context.Root : context.Start, path, followFinal, ref symlinks);
        return !resolution.IsMissing;
    }

    /// <summary>
    /// Resolves all but the last component of <paramref name="path"/> (for create, unlink, rename).
    /// The name is "." or ".." when the path ends so; callers turn those into Linux's errors.
    /// </summary>
    public (VfsPath Parent, string Name, bool TrailingSlash) ResolveParent(in PathContext context, string path)
    {
        if (path.Length == 0)
        {
            throw ErrnoException.Of(Errno.ENOENT);
        }

        if (path.Length >= LinuxConstants.PathMax)
        {
            throw ErrnoException.Of(Errno.ENAMETOOLONG);
        }

        if (path[0] == '/' && (context.Flags & ResolveFlags.Beneath) != 0)
        {
            throw ErrnoException.Of(Errno.EXDEV);
        }

        string trimmed = path.TrimEnd('/');
        bool trailingSlash = trimmed.Length != path.Length;
        if (trimmed.Length == 0)
        {
            // "/" itself: its "name" is the root.
            return (context.Root, ".", true);
        }

        int slash = trimmed.LastIndexOf('/');
        string name = trimmed[(slash + 1)..];
        if (name.Length > LinuxConstants.NameMax)
        {
            throw ErrnoException.Of(Errno.ENAMETOOLONG);
        }

        VfsPath parent;
        if (slash < 0)
        {
            parent = context.Start;
        }
        else if (slash == 0)
        {
            parent = context.Root;
        }
        else
        {
            int symlinks = 0;
            var resolution = Walk(context, trimmed[0] == '/' ? context.Root : context.Start, trimmed[..slash], followFinal: true, ref symlinks);
            if (resolution.IsMissing)
            {
                throw ErrnoException.Of(Errno.ENOENT);
            }

            if (resolution.Description is not null)
            {
                throw ErrnoException.Of(Errno.ENOTDIR);
            }

            parent = resolution.Path;
        }

        var attributes = parent.Inode.GetAttributes();
        if (!attributes.Mode.IsDirectory())
        {
            throw ErrnoException.Of(Errno.ENOTDIR);
        }

        return (parent, name, trailingSlash);
    }

    private Resolution Walk(in PathContext context, VfsPath start, string path, bool followFinal, ref int symlinks)
    {
        if (path[0] == '/' && (context.Flags & ResolveFlags.Beneath) != 0)
        {
            // RESOLVE_BENEATH: an absolute path (or absolute symlink) leaves the starting point.
            throw ErrnoException.Of(Errno.EXDEV);
        }

        var current = start;
        bool trailingSlash = path[^1] == '/';
        int position = 0;
        while (true)
        {
            while (position < path.Length && path[position] == '/')
            {
                position++;
            }

            if (position >= path.Length)
            {
                break;
            }

            int end = path.IndexOf('/', position);
            if (end < 0)
            {
                end = path.Length;
            }

            int rest = end;
            while (rest < path.Length && path[rest] == '/')
            {
                rest++;
            }

            bool last = rest >= path.Length;
            string component = path[position..end];
            position = end;

            var directoryAttributes = current.Inode.GetAttributes();
            if (!directoryAttributes.Mode.IsDirectory())
            {
                throw ErrnoException.Of(Errno.ENOTDIR);
            }

            Permissions.Check(directoryAttributes, context.Credentials, Permissions.Execute);
            if (component == ".")
            {
                continue;
            }

            if (component == "..")
            {
                if (context.Flags != 0)
                {
                    if (current == context.Root && (context.Flags & ResolveFlags.Beneath) != 0)
                    {
                        throw ErrnoException.Of(Errno.EXDEV);
                    }

                    var parent = ParentOf(current, context.Root);
                    if (parent.Mount != current.Mount && (context.Flags & ResolveFlags.NoCrossDevice) != 0)
                    {
                        throw ErrnoException.Of(Errno.EXDEV);
                    }

                    current = parent;
                    continue;
                }

                current = ParentOf(current, context.Root);
                continue;
            }

            if (component.Length > LinuxConstants.NameMax)
            {
                throw ErrnoException.Of(Errno.ENAMETOOLONG);
            }

            var child = LookupChild(current.Dentry, component);
            if (child is null)
            {
                return context.ReportMissing ? default : throw ErrnoException.Of(Errno.ENOENT);
            }

            var next = CrossMounts(new VfsPath(current.Mount, child));
            if ((context.Flags & ResolveFlags.NoCrossDevice) != 0 && next.Mount != current.Mount)
            {
                throw ErrnoException.Of(Errno.EXDEV);
            }

            var mode = next.Inode.GetAttributes().Mode;
            if (mode.IsSymlink() && (!last || followFinal || trailingSlash))
            {
                if (++symlinks > LinuxConstants.SymlinkMax)
                {
                    throw ErrnoException.Of(Errno.ELOOP);
                }

                if ((context.Flags & ResolveFlags.NoSymlinks) != 0)
                {
                    throw ErrnoException.Of(Errno.ELOOP);
                }

                if (next.Inode is IMagicLink magic && context.Task is { } task)
                {
                    if ((context.Flags & ResolveFlags.NoMagicLinks) != 0)
                    {
                        throw ErrnoException.Of(Errno.ELOOP);
                    }

                    if ((context.Flags & (ResolveFlags.Beneath | ResolveFlags.InRoot)) != 0)
                    {
                        // Linux: jumping through a magic link is not safe for scoped lookups.
                        throw ErrnoException.Of(Errno.EXDEV);
                    }

                    var target = magic.Resolve(task);
                    if ((context.Flags & ResolveFlags.NoCrossDevice) != 0 && target.Path is { } jumped && jumped.Mount != current.Mount)
                    {
                        throw ErrnoException.Of(Errno.EXDEV);
                    }

                    if (target.Path is { } targetPath)
                    {
                        current = targetPath;
                        continue;
                    }

                    if (last && target.Description is { } description)
                    {
                        return new Resolution(current, description);
                    }

                    throw ErrnoException.Of(Errno.ENOTDIR);
                }

                string linkTarget = next.Inode.ReadLink();
                if (linkTarget.Length == 0)
                {
                    throw ErrnoException.Of(Errno.ENOENT);
                }

                if (linkTarget[0] == '/' && (context.Flags & ResolveFlags.NoCrossDevice) != 0 && current.Mount != context.Root.Mount)
                {
                    throw ErrnoException.Of(Errno.EXDEV);
                }

                var resolved = Walk(context, linkTarget[0] == '/' ? context.Root : current, linkTarget, followFinal: true, ref symlinks);
                if (resolved.Description is not null || resolved.IsMissing)
                {
                    return resolved;
                }

                current = resolved.Path;
                continue;
            }

            current = next;
        }

        if (trailingSlash && !current.Inode.GetAttributes().Mode.IsDirectory())
        {
            throw ErrnoException.Of(Errno.ENOTDIR);
        }

        return new Resolution(current, null);
    }

    /// <summary>
    /// The child dentry for <paramref name="name"/>, from the cache or the filesystem; null when
    /// absent. Names found and names absent are both cached; for a filesystem with a
    /// <see cref="IFileSystem.LookupCacheTimeout"/> an expired entry is looked up again, and kept
    /// (its dentry reused) when the name still leads to the same inode.
    /// </summary>
    public Dentry? LookupChild(Dentry parent, string name)
    {
        var fileSystem = parent.Inode.FileSystem;
        lock (parent)
        {
            bool caches = fileSystem.CachesLookups;
            Dentry? stale = null;
            if (caches && parent.TryGetCached(name, out var cached, out long expiresAt))
            {
                if (expiresAt == long.MaxValue || Stopwatch.GetTimestamp() < expiresAt)
                {
                    return cached;
                }

                stale = cached;
            }

            var inode = parent.Inode.Lookup(name);
            Dentry? child;
            if (stale is not null && (ReferenceEquals(stale.Inode, inode) || stale.MountCount > 0))
            {
                child = stale; // Still the same file (or a mount point, which stays where it is).
            }
            else
            {
                if (stale is not null)
                {
                    stale.Deleted = true; // Replaced or removed behind the sandbox's back.
                }

                child = inode is null ? null : new Dentry(name, parent, inode);
            }

            if (caches)
            {
                parent.Cache(name, child, LookupExpiry(fileSystem));
            }

            return child;
        }
    }

    /// <summary>When a name cached now in <paramref name="fileSystem"/> stops being trusted.</summary>
    internal static long LookupExpiry(IFileSystem fileSystem)
    {
        var timeout = fileSystem.LookupCacheTimeout;
        if (timeout == Timeout.InfiniteTimeSpan || timeout < TimeSpan.Zero)
        {
            return long.MaxValue;
        }

        return Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
    }

    /// <summary>Follows mounts stacked on <paramref name="path"/> down to the topmost filesystem's root.</summary>
    public VfsPath CrossMounts(VfsPath path)
    {
        while (path.Dentry.MountCount > 0)
        {
            Mount? mounted;
            lock (mountGate)
            {
                mountsByPoint.TryGetValue((path.Mount, path.Dentry), out mounted);
            }

            if (mounted is null)
            {
                break;
            }

            path = new VfsPath(mounted, mounted.Root);
        }

        return path;
    }

    /// <summary>"..": the parent, crossing mounts upward and never above <paramref name="root"/>.</summary>
    public static VfsPath ParentOf(VfsPath path, VfsPath root)
    {
        while (true)
        {
            if (path == root)
            {
                return path;
            }

            if (path.Dentry == path.Mount.Root)
            {
                if (path.Mount.Parent is null || path.Mount.MountPoint is null)
                {
                    return path;
                }

                path = new VfsPath(path.Mount.Parent, path.Mount.MountPoint);
                continue;
            }

            return new VfsPath(path.Mount, path.Dentry.Parent ?? path.Dentry);
        }
    }

    /// <summary>The absolute path of <paramref name="path"/> as seen from <paramref name="root"/> (getcwd, /proc links).</summary>
    public static string PathString(VfsPath path, VfsPath root)
    {
        var parts = new List<string>();
        var current = path;
        while (current != root)
        {
            if (current.Dentry == current.Mount.Root)
            {
                if (current.Mount.Parent is null || current.Mount.MountPoint is null)
                {
                    // Outside the task's root (after chroot): Linux shows the path from the real root.
                    break;
                }

                current = new VfsPath(current.Mount.Parent, current.Mount.MountPoint);
                continue;
            }

            parts.Add(current.Dentry.Name);
            current = new VfsPath(current.Mount, current.Dentry.Parent ?? current.Dentry);
        }

        if (parts.Count == 0)
        {
            return "/";
        }

        parts.Reverse();
        return "/" + string.Join('/', parts);
    }

    /// <summary>True when <paramref name="path"/> is <paramref name="ancestor"/> or below it.</summary>
    public static bool IsAtOrBelow(VfsPath path, VfsPath ancestor)
    {
        var current = path;
        while (true)
        {
            if (current == ancestor)
            {
                return true;
            }

            if (current.Dentry == current.Mount.Root)
            {
                if (current.Mount.Parent is null || current.Mount.MountPoint is null)
                {
                    return false;
                }

                current = new VfsPath(current.Mount.Parent, current.Mount.MountPoint);
                continue;
            }

            if (current.Dentry.Parent is null)
            {
                return false;
            }

            current = new VfsPath(current.Mount, current.Dentry.Parent);
        }
    }

    /// <summary>The mount whose root is at or above <paramref name="path"/>'s dentry.</summary>
    public Mount? MountedAt(VfsPath path)
    {
        lock (mountGate)
        {
            return mountsByPoint.TryGetValue((path.Mount, path.Dentry), out var m) ? m : null;
        }
    }
}
