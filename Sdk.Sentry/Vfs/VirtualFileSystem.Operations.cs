using FileMode = AppKernel.Vfs.FileMode;
using System.Runtime.CompilerServices;
using AppKernel.Sentry.Abi;
using AppKernel.Sentry.Kernel;
using AppKernel.Vfs;

namespace AppKernel.Sentry.Vfs;

// The namespace operations syscalls call: open, mkdir, mknod, unlink, rmdir, rename, link,
// symlink, with Linux's permission checks and errno choices.
internal sealed partial class VirtualFileSystem
{
    private readonly ConditionalWeakTable<IInode, Pipe> fifos = new();

    public DeviceRegistry Devices { get; } = new();

    /// <summary>open/openat: returns a new description (the caller installs it in the fd table).</summary>
    public FileDescription Open(KernelTask task, in PathContext context, string path, OpenFlags flags, FileMode mode) =>
        OpenCore(task, context with { ReportMissing = false }, path, flags, mode) ?? throw ErrnoException.Of(Errno.ENOENT);

    /// <summary>
    /// <see cref="Open"/>, except that a missing name of an open without O_CREAT returns false
    /// (ENOENT) instead of throwing, as <see cref="TryResolve"/>.
    /// </summary>
    public bool TryOpen(KernelTask task, in PathContext context, string path, OpenFlags flags, FileMode mode, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out FileDescription? description)
    {
        description = OpenCore(task, context with { ReportMissing = true }, path, flags, mode);
        return description is not null;
    }

    private FileDescription? OpenCore(KernelTask task, in PathContext context, string path, OpenFlags flags, FileMode mode)
    {
        bool follow = (flags & OpenFlags.NoFollow) == 0;
        bool created = false;
        VfsPath target;
        if ((flags & OpenFlags.TempFile) == OpenFlags.TempFile)
        {
            return OpenTempFile(task, context, path, flags, mode);
        }

        if ((flags & OpenFlags.Create) != 0 && (flags & OpenFlags.Path) == 0)
        {
            var (parent, name, trailingSlash) = ResolveParent(context, path);
            if (name is "." or ".." || trailingSlash)
            {
                throw ErrnoException.Of(Errno.EISDIR);
            }

            lock (NamespaceLock)
            {
                var existing = LookupChild(parent.Dentry, name);
                if (existing is null)
                {
                    var parentAttributes = parent.Inode.GetAttributes();
                    CheckWritableMount(parent.Mount);
                    Permissions.Check(parentAttributes, context.Credentials, Permissions.Write | Permissions.Execute);
                    var inode = parent.Inode.CreateNode(name, FileMode.Regular | (mode & ~(FileMode)task.Fs.Umask & FileMode.PermissionMask), 0, NewOwner(context.Credentials, parentAttributes));
                    var dentry = new Dentry(name, parent.Dentry, inode);
                    CacheChild(parent.Dentry, name, dentry);
                    target = new VfsPath(parent.Mount, dentry);
                    created = true;
                    Inotify.DirectoryEvent(parent.Inode, name, InotifyMask.Create, isDirectory: false);
                }
                else
                {
                    if ((flags & OpenFlags.Exclusive) != 0)
                    {
                        throw ErrnoException.Of(Errno.EEXIST);
                    }

                    target = CrossMounts(new VfsPath(parent.Mount, existing));
                }
            }

            if (!created && target.Inode.GetAttributes().Mode.IsSymlink())
            {
                if (!follow)
                {
                    throw ErrnoException.Of(Errno.ELOOP);
                }

                var resolution = Resolve(context, path, followFinal: true);
                if (resolution.Description is { } reopened)
                {
                    return Reopen(task, context.Credentials, reopened, flags);
                }

                target = resolution.Path;
            }
        }
        else
        {
            Resolution resolution;
            if (context.ReportMissing)
            {
                if (!TryResolve(context, path, follow, out resolution))
                {
                    return null;
                }
            }
            else
            {
                resolution = Resolve(context, path, follow);
            }

            if (resolution.Description is { } reopened)
            {
                return Reopen(task, context.Credentials, reopened, flags);
            }

            target = resolution.Path;
        }

        return OpenResolved(task, context.Credentials, target, flags, created);
    }

    /// <summary>Opens an already resolved path (open after the walk; also execve and the loader).</summary>
    public FileDescription OpenResolved(KernelTask? task, Credentials credentials, VfsPath target, OpenFlags flags, bool created)
    {
        var inode = target.Inode;
        var attributes = inode.GetAttributes();
        var type = attributes.Mode.Type();
        if ((flags & OpenFlags.Directory) != 0 && type != FileMode.Directory)
        {
            throw ErrnoException.Of(type == FileMode.Symlink && (flags & OpenFlags.NoFollow) != 0 ? Errno.ELOOP : Errno.ENOTDIR);
        }

        string name = PathString(target, task?.Fs.Root ?? RootPath);
        if ((flags & OpenFlags.Path) != 0)
        {
            return new FileDescription(new PathOnlyOperations(inode), target, flags & (OpenFlags.Path | OpenFlags.Directory | OpenFlags.NoFollow | OpenFlags.CloseOnExec), name);
        }

        if (type == FileMode.Symlink)
        {
            throw ErrnoException.Of(Errno.ELOOP);
        }

        bool wantsWrite = flags.CanWrite();
        if (type == FileMode.Directory)
        {
            if (wantsWrite || (flags & OpenFlags.Create) != 0)
            {
                throw ErrnoException.Of(Errno.EISDIR);
            }
        }

        // Linux truncates a regular file for O_TRUNC whatever the access mode (O_RDONLY|O_TRUNC
        // too), so it needs a writable mount and write permission either way.
        bool truncates = (flags & OpenFlags.Truncate) != 0 && type == FileMode.Regular;
        if (!created)
        {
            if ((wantsWrite && type is FileMode.Regular or FileMode.Directory) || truncates)
            {
                CheckWritableMount(target.Mount);
            }

            int mask = (flags.CanRead() ? Permissions.Read : 0) | (wantsWrite ? Permissions.Write : 0);
            if ((flags & OpenFlags.Truncate) != 0 && type == FileMode.Regular)
            {
                mask |= Permissions.Write;
            }

            Permissions.Check(attributes, credentials, mask);
        }

        IFileOperations operations;
        switch (type)
        {
            case FileMode.Directory:
                operations = new DirectoryOperations(target);
                break;
            case FileMode.Regular:
                if (truncates && !created)
                {
                    // Linux's truncation at open drops set-id bits even when the size is already 0.
                    if (Permissions.RemovePrivileges(inode, credentials))
                    {
                        Inotify.FileEvent(target, inode, InotifyMask.Attrib);
                    }

                    if (attributes.Size != 0)
                    {
                        inode.SetAttributes(new AttributeUpdate(AttributeMask.Size, Size: 0));
                    }
                }

                operations = inode.Open(flags);
                break;
            case FileMode.Fifo:
                operations = OpenFifo(task, inode, flags);
                break;
            case FileMode.CharDevice:
                operations = Devices.Open(LinuxConstants.Major(attributes.Rdev), LinuxConstants.Minor(attributes.Rdev), flags, inode);
                break;
            default:
                throw ErrnoException.Of(Errno.ENXIO);
        }

        return new FileDescription(operations, target, flags, name);
    }

    private FileDescription OpenTempFile(KernelTask task, in PathContext context, string path, OpenFlags flags, FileMode mode)
    {
        if (!flags.CanWrite())
        {
            throw ErrnoException.Of(Errno.EINVAL);
        }

        var directory = Resolve(context, path, followFinal: true).Path;
        var attributes = directory.Inode.GetAttributes();
        if (!attributes.Mode.IsDirectory())
        {
            throw ErrnoException.Of(Errno.ENOTDIR);
        }

        CheckWritableMount(directory.Mount);
        Permissions.Check(attributes, context.Credentials, Permissions.Write | Permissions.Execute);
        lock (NamespaceLock)
        {
            // An unnamed file: created under a private name and unlinked at once; it lives while open.
            string name = $".appkernel-tmpfile-{Guid.NewGuid():N}";
            var inode = directory.Inode.CreateNode(name, FileMode.Regular | (mode & ~(FileMode)task.Fs.Umask & FileMode.PermissionMask), 0, NewOwner(context.Credentials, attributes));
            var operations = inode.Open(flags & ~OpenFlags.TempFile | OpenFlags.Directory & 0);
            directory.Inode.Unlink(name);
            var dentry = new Dentry(name, directory.Dentry, inode) { Deleted = true };
            return new FileDescription(operations, new VfsPath(directory.Mount, dentry), flags & ~OpenFlags.TempFile, "/" + name + " (deleted)");
        }
    }

    /// <summary>
    /// Opens /proc/PID/fd/N of a file that has no path: as Linux, a new open file description
    /// with the flags asked for now (its own offset and access mode). A pipe opens like a FIFO
    /// (the read end can be opened for writing), an unnamed regular file (memfd) like a file;
    /// sockets and anonymous inodes (eventfd, epoll, ...) cannot be opened again: ENXIO.
    /// </summary>
    private FileDescription Reopen(KernelTask? task, Credentials credentials, FileDescription description, OpenFlags flags)
    {
        if ((flags & OpenFlags.Path) != 0)
        {
            return description.AddReference();
        }

        if ((flags & OpenFlags.Directory) != 0)
        {
            throw ErrnoException.Of(Errno.ENOTDIR);
        }

        if (description.Operations is PipeEnd end)
        {
            return new FileDescription(OpenPipe(task, end.Pipe, end.Inode, flags), null, flags & ~(OpenFlags.Create | OpenFlags.Exclusive | OpenFlags.Truncate), description.Name);
        }

        if (description.Operations.Inode is { } inode && inode.GetAttributes() is var attributes && attributes.Mode.Type() == FileMode.Regular)
        {
            bool wantsWrite = flags.CanWrite();
            bool truncates = (flags & OpenFlags.Truncate) != 0;
            Permissions.Check(attributes, credentials, (flags.CanRead() ? Permissions.Read : 0) | (wantsWrite || truncates ? Permissions.Write : 0));
            if (truncates && attributes.Size != 0)
            {
                inode.SetAttributes(new AttributeUpdate(AttributeMask.Size, Size: 0));
            }

            return new FileDescription(inode.Open(flags), null, flags & ~(OpenFlags.Create | OpenFlags.Exclusive | OpenFlags.Truncate), description.Name);
        }

        throw ErrnoException.Of(Errno.ENXIO);
    }

    private IFileOperations OpenFifo(KernelTask? task, IInode inode, OpenFlags flags) =>
        OpenPipe(task, fifos.GetValue(inode, _ => new Pipe()), inode, flags);

    private static IFileOperations OpenPipe(KernelTask? task, Pipe pipe, IInode? inode, OpenFlags flags)
    {
        bool read = flags.CanRead();
        bool write = flags.CanWrite();
        if (read && write)
        {
            return new PipeEnd(pipe, reader: true, inode); // O_RDWR never blocks; Linux gives both ends
        }

        var end = new PipeEnd(pipe, reader: read, inode);
        bool nonBlocking = (flags & OpenFlags.NonBlocking) != 0;
        if (write && pipe.Readers == 0)
        {
            if (nonBlocking)
            {
                end.Release();
                throw ErrnoException.Of(Errno.ENXIO);
            }
        }

        if (!nonBlocking && task is not null)
        {
            // A FIFO open waits for the other side, as on Linux.
            int generation = read ? pipe.WriterGeneration : pipe.ReaderGeneration;
            try
            {
                task.WaitUntil(pipe.Waiters, PollEvents.All, () => read
                    ? pipe.Writers > 0 || pipe.WriterGeneration != generation
                    : pipe.Readers > 0 || pipe.ReaderGeneration != generation);
            }
            catch
            {
                end.Release();
                throw;
            }
        }

        return end;
    }

    /// <summary>mkdir/mkdirat.</summary>
    public void MakeDirectory(int umask, in PathContext context, string path, FileMode mode)
    {
        var (parent, name, _) = ResolveParent(context, path);
        if (name is "." or "..")
        {
            throw ErrnoException.Of(Errno.EEXIST);
        }

        lock (NamespaceLock)
        {
            if (LookupChild(parent.Dentry, name) is not null)
            {
                throw ErrnoException.Of(Errno.EEXIST);
            }

            var attributes = parent.Inode.GetAttributes();
            CheckWritableMount(parent.Mount);
            Permissions.Check(attributes, context.Credentials, Permissions.Write | Permissions.Execute);
            var inherited = (attributes.Mode & FileMode.SetGid) != 0 ? FileMode.SetGid : 0;
            var inode = parent.Inode.CreateDirectory(name, FileMode.Directory | inherited | (mode & ~(FileMode)umask & (FileMode.PermissionMask & ~FileMode.SetGid)), NewOwner(context.Credentials, attributes));
            CacheChild(parent.Dentry, name, new Dentry(name, parent.Dentry, inode));
            Inotify.DirectoryEvent(parent.Inode, name, InotifyMask.Create, isDirectory: true);
        }
    }

    /// <summary>mknod/mknodat for regular files, FIFOs and sockets (device nodes need CAP_MKNOD: EPERM for non-root).</summary>
    public void MakeNode(int umask, in PathContext context, string path, FileMode mode, ulong device)
    {
        var type = mode.Type();
        if (type == 0)
        {
            type = FileMode.Regular;
        }

        if (type is FileMode.CharDevice or FileMode.BlockDevice && !context.Credentials.IsRoot)
        {
            throw ErrnoException.Of(Errno.EPERM);
        }

        if (type is not (FileMode.Regular or FileMode.Fifo or FileMode.Socket or FileMode.CharDevice or FileMode.BlockDevice))
        {
            throw ErrnoException.Of(Errno.EINVAL);
        }

        var (parent, name, trailingSlash) = ResolveParent(context, path);
        if (name is "." or ".." || trailingSlash)
        {
            throw ErrnoException.Of(Errno.EEXIST);
        }

        lock (NamespaceLock)
        {
            if (LookupChild(parent.Dentry, name) is not null)
            {
                throw ErrnoException.Of(Errno.EEXIST);
            }

            var attributes = parent.Inode.GetAttributes();
            CheckWritableMount(parent.Mount);
            Permissions.Check(attributes, context.Credentials, Permissions.Write | Permissions.Execute);
            var inode = parent.Inode.CreateNode(name, type | (mode & ~(FileMode)umask & FileMode.PermissionMask), device, NewOwner(context.Credentials, attributes));
            CacheChild(parent.Dentry, name, new Dentry(name, parent.Dentry, inode));
            Inotify.DirectoryEvent(parent.Inode, name, InotifyMask.Create, isDirectory: false);
        }
    }

    /// <summary>symlink/symlinkat.</summary>
    public void MakeSymlink(in PathContext context, string target, string path)
    {
        if (target.Length == 0)
        {
            throw ErrnoException.Of(Errno.ENOENT);
        }

        var (parent, name, trailingSlash) = ResolveParent(context, path);
        if (name is "." or ".." || trailingSlash)
        {
            throw ErrnoException.Of(Errno.EEXIST);
        }

        lock (NamespaceLock)
        {
            if (LookupChild(parent.Dentry, name) is not null)
            {
                throw ErrnoException.Of(Errno.EEXIST);
            }

            var attributes = parent.Inode.GetAttributes();
            CheckWritableMount(parent.Mount);
            Permissions.Check(attributes, context.Credentials, Permissions.Write | Permissions.Execute);
            var inode = parent.Inode.CreateSymlink(name, target, NewOwner(context.Credentials, attributes));
            CacheChild(parent.Dentry, name, new Dentry(name, parent.Dentry, inode));
            Inotify.DirectoryEvent(parent.Inode, name, InotifyMask.Create, isDirectory: false);
        }
    }

    /// <summary>unlink/unlinkat without AT_REMOVEDIR.</summary>
    public void Unlink(in PathContext context, string path)
    {
        var (parent, name, trailingSlash) = ResolveParent(context, path);
        if (name is "." or "..")
        {
            throw ErrnoException.Of(name == "." && path.TrimEnd('/').Length == 0 ? Errno.EISDIR : Errno.EISDIR);
        }

        lock (NamespaceLock)
        {
            var child = LookupChild(parent.Dentry, name) ?? throw ErrnoException.Of(Errno.ENOENT);
            var childAttributes = child.Inode.GetAttributes();
            if (childAttributes.Mode.IsDirectory())
            {
                throw ErrnoException.Of(Errno.EISDIR);
            }

            if (trailingSlash)
            {
                throw ErrnoException.Of(Errno.ENOTDIR);
            }

            var parentAttributes = parent.Inode.GetAttributes();
            CheckWritableMount(parent.Mount);
            Permissions.Check(parentAttributes, context.Credentials, Permissions.Write | Permissions.Execute);
            Permissions.CheckSticky(parentAttributes, childAttributes, context.Credentials);
            if (child.MountCount > 0)
            {
                throw ErrnoException.Of(Errno.EBUSY);
            }

            parent.Inode.Unlink(name);
            child.Deleted = true;
            Uncache(parent.Dentry, name);
            if (Inotify.Active)
            {
                // As Linux: the link count changed (IN_ATTRIB), with the last link the file itself
                // went (IN_DELETE_SELF, then IN_IGNORED), and then the name (IN_DELETE).
                Inotify.SelfEvent(child.Inode, InotifyMask.Attrib);
                if (child.Inode.GetAttributes().Links == 0)
                {
                    Inotify.SelfEvent(child.Inode, InotifyMask.DeleteSelf);
                }

                Inotify.DirectoryEvent(parent.Inode, name, InotifyMask.Delete, isDirectory: false);
            }
        }
    }

    /// <summary>rmdir / unlinkat(AT_REMOVEDIR).</summary>
    public void RemoveDirectory(in PathContext context, string path)
    {
        var (parent, name, _) = ResolveParent(context, path);
        if (name == ".")
        {
            throw ErrnoException.Of(path.TrimEnd('/').Length == 0 ? Errno.EBUSY : Errno.EINVAL);
        }

        if (name == "..")
        {
            throw ErrnoException.Of(Errno.ENOTEMPTY);
        }

        lock (NamespaceLock)
        {
            var child = LookupChild(parent.Dentry, name) ?? throw ErrnoException.Of(Errno.ENOENT);
            var childAttributes = child.Inode.GetAttributes();
            if (!childAttributes.Mode.IsDirectory())
            {
                throw ErrnoException.Of(Errno.ENOTDIR);
            }

            var parentAttributes = parent.Inode.GetAttributes();
            CheckWritableMount(parent.Mount);
            Permissions.Check(parentAttributes, context.Credentials, Permissions.Write | Permissions.Execute);
            Permissions.CheckSticky(parentAttributes, childAttributes, context.Credentials);
            if (child.MountCount > 0 || IsRootOfAnything(parent, child, context))
            {
                throw ErrnoException.Of(Errno.EBUSY);
            }

            parent.Inode.RemoveDirectory(name);
            child.Deleted = true;
            Uncache(parent.Dentry, name);
            if (Inotify.Active)
            {
                Inotify.SelfEvent(child.Inode, InotifyMask.DeleteSelf);
                Inotify.DirectoryEvent(parent.Inode, name, InotifyMask.Delete, isDirectory: true);
            }
        }
    }

    /// <summary>link/linkat.</summary>
    public void Link(in PathContext context, VfsPath existing, string newPath)
    {
        var existingAttributes = existing.Inode.GetAttributes();
        var (parent, name, trailingSlash) = ResolveParent(context, newPath);
        if (name is "." or ".." || trailingSlash)
        {
            throw ErrnoException.Of(Errno.EEXIST);
        }

        lock (NamespaceLock)
        {
            if (LookupChild(parent.Dentry, name) is not null)
            {
                throw ErrnoException.Of(Errno.EEXIST);
            }

            // Linux's order: EEXIST, EROFS, EXDEV (another mount), EACCES, then EPERM for a directory.
            CheckWritableMount(parent.Mount);
            if (parent.Mount != existing.Mount)
            {
                throw ErrnoException.Of(Errno.EXDEV);
            }

            var parentAttributes = parent.Inode.GetAttributes();
            Permissions.Check(parentAttributes, context.Credentials, Permissions.Write | Permissions.Execute);
            if (existingAttributes.Mode.IsDirectory())
            {
                throw ErrnoException.Of(Errno.EPERM);
            }
            if (existing.Dentry.Deleted && existingAttributes.Links == 0)
            {
                throw ErrnoException.Of(Errno.ENOENT);
            }

            parent.Inode.Link(name, existing.Inode);
            CacheChild(parent.Dentry, name, new Dentry(name, parent.Dentry, existing.Inode));
            Inotify.SelfEvent(existing.Inode, InotifyMask.Attrib);
            Inotify.DirectoryEvent(parent.Inode, name, InotifyMask.Create, isDirectory: false);
        }
    }

    /// <summary>rename/renameat/renameat2.</summary>
    public void Rename(in PathContext oldContext, string oldPath, in PathContext newContext, string newPath, RenameFlags flags)
    {
        if ((flags & RenameFlags.NoReplace) != 0 && (flags & RenameFlags.Exchange) != 0)
        {
            throw ErrnoException.Of(Errno.EINVAL);
        }

        var (oldParent, oldName, _) = ResolveParent(oldContext, oldPath);
        var (newParent, newName, _) = ResolveParent(newContext, newPath);
        if (oldName is "." or ".." || newName is "." or "..")
        {
            throw ErrnoException.Of(oldName == "." || newName == "." ? Errno.EINVAL : Errno.EBUSY);
        }

        lock (NamespaceLock)
        {
            var source = LookupChild(oldParent.Dentry, oldName) ?? throw ErrnoException.Of(Errno.ENOENT);
            var target = LookupChild(newParent.Dentry, newName);
            if (oldParent.Mount != newParent.Mount)
            {
                throw ErrnoException.Of(Errno.EXDEV);
            }

            var sourceAttributes = source.Inode.GetAttributes();
            bool sourceIsDirectory = sourceAttributes.Mode.IsDirectory();
            if ((oldPath.EndsWith('/') || newPath.EndsWith('/')) && !sourceIsDirectory)
            {
                throw ErrnoException.Of(Errno.ENOTDIR);
            }

            var oldParentAttributes = oldParent.Inode.GetAttributes();
            var newParentAttributes = newParent.Inode.GetAttributes();
            CheckWritableMount(oldParent.Mount);
            Permissions.Check(oldParentAttributes, oldContext.Credentials, Permissions.Write | Permissions.Execute);
            Permissions.Check(newParentAttributes, newContext.Credentials, Permissions.Write | Permissions.Execute);
            Permissions.CheckSticky(oldParentAttributes, sourceAttributes, oldContext.Credentials);
            if (target is not null)
            {
                if (ReferenceEquals(target.Inode, source.Inode) && (flags & RenameFlags.Exchange) == 0)
                {
                    return; // the same file: rename does nothing
                }

                if ((flags & RenameFlags.NoReplace) != 0)
                {
                    throw ErrnoException.Of(Errno.EEXIST);
                }

                var targetAttributes = target.Inode.GetAttributes();
                Permissions.CheckSticky(newParentAttributes, targetAttributes, newContext.Credentials);
                if ((flags & RenameFlags.Exchange) == 0)
                {
                    if (targetAttributes.Mode.IsDirectory() && !sourceIsDirectory)
                    {
                        throw ErrnoException.Of(Errno.EISDIR);
                    }

                    if (!targetAttributes.Mode.IsDirectory() && sourceIsDirectory)
                    {
                        throw ErrnoException.Of(Errno.ENOTDIR);
                    }
                }

                if (target.MountCount > 0)
                {
                    throw ErrnoException.Of(Errno.EBUSY);
                }
            }
            else if ((flags & RenameFlags.Exchange) != 0)
            {
                throw ErrnoException.Of(Errno.ENOENT);
            }

            // A directory moving to another parent gets a new "..": that needs write permission on it
            // (and on the other directory of an exchange).
            if (!ReferenceEquals(oldParent.Dentry, newParent.Dentry))
            {
                if (sourceIsDirectory)
                {
                    Permissions.Check(sourceAttributes, oldContext.Credentials, Permissions.Write);
                }

                if (target is not null && (flags & RenameFlags.Exchange) != 0 && target.Inode.GetAttributes() is var exchanged && exchanged.Mode.IsDirectory())
                {
                    Permissions.Check(exchanged, newContext.Credentials, Permissions.Write);
                }
            }

            if (source.MountCount > 0)
            {
                throw ErrnoException.Of(Errno.EBUSY);
            }

            // A directory cannot move into its own subtree.
            var sourcePath = new VfsPath(oldParent.Mount, source);
            if (sourceIsDirectory && IsAtOrBelow(newParent, sourcePath))
            {
                throw ErrnoException.Of(Errno.EINVAL);
            }

            if (target is not null && (flags & RenameFlags.Exchange) != 0 && target.Inode.GetAttributes().Mode.IsDirectory() &&
                IsAtOrBelow(oldParent, new VfsPath(newParent.Mount, target)))
            {
                throw ErrnoException.Of(Errno.EINVAL);
            }

            oldParent.Inode.Rename(oldName, newParent.Inode, newName, flags);
            Uncache(oldParent.Dentry, oldName);
            Uncache(newParent.Dentry, newName);
            if ((flags & RenameFlags.Exchange) != 0 && target is not null)
            {
                target.MoveTo(oldParent.Dentry, oldName);
                CacheChild(oldParent.Dentry, oldName, target);
            }
            else if (target is not null)
            {
                target.Deleted = true;
            }

            source.MoveTo(newParent.Dentry, newName);
            CacheChild(newParent.Dentry, newName, source);
            if (Inotify.Active)
            {
                NotifyRename(oldParent.Inode, oldName, newParent.Inode, newName, source.Inode, sourceIsDirectory, target?.Inode, flags);
            }
        }
    }

    // Linux's fsnotify_move: IN_MOVED_FROM and IN_MOVED_TO sharing a cookie, IN_ATTRIB for a
    // replaced target (and IN_DELETE_SELF when that was its last link), IN_MOVE_SELF for the source.
    private void NotifyRename(IInode oldParent, string oldName, IInode newParent, string newName, IInode source, bool sourceIsDirectory, IInode? target, RenameFlags flags)
    {
        bool exchange = (flags & RenameFlags.Exchange) != 0 && target is not null;
        uint cookie = Inotify.NextCookie();
        Inotify.DirectoryEvent(oldParent, oldName, InotifyMask.MovedFrom, sourceIsDirectory, cookie);
        Inotify.DirectoryEvent(newParent, newName, InotifyMask.MovedTo, sourceIsDirectory, cookie);
        if (exchange)
        {
            bool targetIsDirectory = target!.GetAttributes().Mode.IsDirectory();
            uint second = Inotify.NextCookie();
            Inotify.DirectoryEvent(newParent, newName, InotifyMask.MovedFrom, targetIsDirectory, second);
            Inotify.DirectoryEvent(oldParent, oldName, InotifyMask.MovedTo, targetIsDirectory, second);
            Inotify.SelfEvent(target, InotifyMask.MoveSelf);
        }
        else if (target is not null)
        {
            Inotify.SelfEvent(target, InotifyMask.Attrib);
            if (target.GetAttributes().Links == 0 || target.GetAttributes().Mode.IsDirectory())
            {
                Inotify.SelfEvent(target, InotifyMask.DeleteSelf);
            }
        }

        Inotify.SelfEvent(source, InotifyMask.MoveSelf);
    }

    /// <summary>EROFS for changes on a read-only mount.</summary>
    public static void CheckWritableMount(Mount mount)
    {
        if (mount.ReadOnly)
        {
            throw ErrnoException.Of(Errno.EROFS);
        }
    }

    private static FileOwner NewOwner(Credentials credentials, in InodeAttributes parent) =>
        new(credentials.FsUid, (parent.Mode & FileMode.SetGid) != 0 ? parent.Gid : credentials.FsGid);

    private static void CacheChild(Dentry parent, string name, Dentry child)
    {
        lock (parent)
        {
            if (parent.Inode.FileSystem.CachesLookups)
            {
                parent.Cache(name, child, LookupExpiry(parent.Inode.FileSystem));
            }
        }
    }

    private static void Uncache(Dentry parent, string name)
    {
        lock (parent)
        {
            parent.Forget(name);
        }
    }

    private static bool IsRootOfAnything(VfsPath parent, Dentry child, in PathContext context) =>
        new VfsPath(parent.Mount, child) == context.Root;
}
