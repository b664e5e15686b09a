using System.Text;
using AppKernel.Sentry.Abi;
using AppKernel.Sentry.Kernel;
using AppKernel.Sentry.Vfs;
using AppKernel.Syscalls;
using AppKernel.Vfs;
using FileMode = AppKernel.Vfs.FileMode;

namespace AppKernel.Sentry.Syscalls;

/// <summary>Opening and closing files and what is done to file descriptors: dup, fcntl, ioctl, pipes, getdents, sync, truncate.</summary>
internal static class FileSyscalls
{
    // Flags open(2) accepts; Linux ignores unknown bits rather than failing.
    private const uint KnownOpenFlags = 0x7FFFFF;

    [Syscall(2)]
    public static SyscallResult Open(ISyscallContext c)
    {
        var a = c.Arguments;
        return OpenAt(c.Task(), LinuxConstants.AT_FDCWD, a.A0, (uint)a.A1, (uint)a.A2);
    }

    [Syscall(257)]
    public static SyscallResult Openat(ISyscallContext c)
    {
        var a = c.Arguments;
        return OpenAt(c.Task(), (int)a.A0, a.A1, (uint)a.A2, (uint)a.A3);
    }

    // Linux's VALID_OPEN_FLAGS: openat2 refuses any other bit.
    private const ulong ValidOpenFlags = 0x7FFFC3;
    private const ulong ValidResolveFlags = 0x3F;

    [Syscall(437, SupportLevel.Partial, Note = "RESOLVE_CACHED lookups always succeed from the dentry cache or the filesystem (never EAGAIN except for O_CREAT/O_TRUNC/O_TMPFILE)")]
    public static SyscallResult Openat2(ISyscallContext c)
    {
        var t = c.Task();
        var a = c.Arguments;
        int dirfd = (int)a.A0;
        ulong size = a.A3;
        const ulong OpenHowSize = 24;
        if (size < OpenHowSize)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        if (size > 4096)
        {
            return SyscallResult.Error(Errno.E2BIG);
        }

        Span<ulong> how = stackalloc ulong[3];
        t.Mm.Read(a.A2, System.Runtime.InteropServices.MemoryMarshal.AsBytes(how));
        if (size > OpenHowSize)
        {
            // A larger struct from a newer program: the tail must be zero (copy_struct_from_user).
            var tail = new byte[size - OpenHowSize];
            t.Mm.Read(a.A2 + OpenHowSize, tail);
            if (tail.AsSpan().IndexOfAnyExcept((byte)0) >= 0)
            {
                return SyscallResult.Error(Errno.E2BIG);
            }
        }

        ulong rawFlags = how[0], mode = how[1];
        var resolve = (ResolveFlags)how[2];
        if ((rawFlags & ~ValidOpenFlags) != 0 || ((ulong)resolve & ~ValidResolveFlags) != 0)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        if ((resolve & (ResolveFlags.Beneath | ResolveFlags.InRoot)) == (ResolveFlags.Beneath | ResolveFlags.InRoot))
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        var flags = (OpenFlags)(uint)rawFlags;
        bool willCreate = (flags & OpenFlags.Create) != 0 || (flags & OpenFlags.TempFile) == OpenFlags.TempFile;
        if (willCreate ? (mode & ~0xFFFUL) != 0 : mode != 0)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        if ((resolve & ResolveFlags.Cached) != 0 && (willCreate || (flags & OpenFlags.Truncate) != 0))
        {
            return SyscallResult.Error(Errno.EAGAIN);
        }

        string path = t.ReadPath(a.A1);
        PathContext context;
        if ((resolve & (ResolveFlags.Beneath | ResolveFlags.InRoot)) != 0)
        {
            // Scoped lookups: the starting directory is also the root for "/" and "..".
            var start = dirfd == LinuxConstants.AT_FDCWD ? t.Fs.Cwd : t.Fds.Get(dirfd).Path ?? throw ErrnoException.Of(Errno.ENOTDIR);
            if (!start.Inode.GetAttributes().Mode.IsDirectory())
            {
                return SyscallResult.Error(Errno.ENOTDIR);
            }

            context = new PathContext(t.Credentials, start, start, t) { Flags = resolve };
        }
        else
        {
            context = t.PathContextAt(dirfd, path) with { Flags = resolve };
        }

        return OpenWith(t, context, path, (uint)rawFlags, (uint)mode);
    }

    [Syscall(85)]
    public static SyscallResult Creat(ISyscallContext c)
    {
        var a = c.Arguments;
        return OpenAt(c.Task(), LinuxConstants.AT_FDCWD, a.A0, (uint)(OpenFlags.WriteOnly | OpenFlags.Create | OpenFlags.Truncate), (uint)a.A1);
    }

    private static SyscallResult OpenAt(KernelTask t, int dirfd, ulong pathAddress, uint rawFlags, uint mode)
    {
        // Flags are checked before the path is read, as Linux's build_open_flags; since Linux 6.4
        // O_CREAT|O_DIRECTORY is refused too.
        if ((rawFlags & (uint)OpenFlags.Create) != 0 && (rawFlags & (uint)OpenFlags.Directory) != 0)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        string path = t.ReadPath(pathAddress);
        return OpenWith(t, t.PathContextAt(dirfd, path), path, rawFlags, mode);
    }

    private static SyscallResult OpenWith(KernelTask t, in PathContext context, string path, uint rawFlags, uint mode)
    {
        var flags = (OpenFlags)(rawFlags & KnownOpenFlags) | OpenFlags.LargeFile;
        if ((flags & OpenFlags.Create) != 0 && (flags & OpenFlags.Directory) != 0)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        if ((flags & OpenFlags.Path) != 0)
        {
            // O_PATH keeps only these flags.
            flags &= OpenFlags.Path | OpenFlags.Directory | OpenFlags.NoFollow | OpenFlags.CloseOnExec | OpenFlags.LargeFile;
        }

        if (!t.Kernel.Vfs.TryOpen(t, context, path, flags, (FileMode)(mode & 0xFFF), out var description))
        {
            return SyscallResult.Error(Errno.ENOENT);
        }

        try
        {
            int fd = t.Fds.Install(description, (flags & OpenFlags.CloseOnExec) != 0, t.Group.Limits.OpenFilesLimit);
            if (!description.IsPathOnly && description.Path is { } opened && description.Notify is null)
            {
                var inotify = t.Kernel.Vfs.Inotify;
                description.Notify = inotify;
                inotify.FileEvent(opened, opened.Inode, InotifyMask.Open);
            }

            return SyscallResult.Ok(fd);
        }
        catch
        {
            description.Release();
            throw;
        }
    }

    [Syscall(3)]
    public static SyscallResult Close(ISyscallContext c)
    {
        c.Task().Fds.Close((int)c.Arguments.A0);
        return SyscallResult.Zero;
    }

    [Syscall(436)]
    public static SyscallResult CloseRange(ISyscallContext c)
    {
        var a = c.Arguments;
        uint first = (uint)a.A0, last = (uint)a.A1;
        uint flags = (uint)a.A2;
        const uint CLOSE_RANGE_UNSHARE = 2, CLOSE_RANGE_CLOEXEC = 4;
        if ((flags & ~(CLOSE_RANGE_UNSHARE | CLOSE_RANGE_CLOEXEC)) != 0 || first > last)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        c.Task().Fds.CloseRange(first, last, (flags & CLOSE_RANGE_CLOEXEC) != 0);
        return SyscallResult.Zero;
    }

    [Syscall(32)]
    public static SyscallResult Dup(ISyscallContext c)
    {
        var t = c.Task();
        var description = t.Fds.GetReferenced((int)c.Arguments.A0);
        try
        {
            return SyscallResult.Ok(t.Fds.Install(description, false, t.Group.Limits.OpenFilesLimit));
        }
        catch
        {
            description.Release();
            throw;
        }
    }

    [Syscall(33)]
    public static SyscallResult Dup2(ISyscallContext c)
    {
        var t = c.Task();
        int oldFd = (int)c.Arguments.A0, newFd = (int)c.Arguments.A1;
        var description = t.Fds.Get(oldFd);
        if (oldFd == newFd)
        {
            return SyscallResult.Ok(newFd);
        }

        t.Fds.InstallAt(newFd, description.AddReference(), false, t.Group.Limits.OpenFilesLimit);
        return SyscallResult.Ok(newFd);
    }

    [Syscall(292)]
    public static SyscallResult Dup3(ISyscallContext c)
    {
        var t = c.Task();
        var a = c.Arguments;
        int oldFd = (int)a.A0, newFd = (int)a.A1;
        var flags = (OpenFlags)(uint)a.A2;
        if ((flags & ~OpenFlags.CloseOnExec) != 0 || oldFd == newFd)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        var description = t.Fds.Get(oldFd);
        t.Fds.InstallAt(newFd, description.AddReference(), (flags & OpenFlags.CloseOnExec) != 0, t.Group.Limits.OpenFilesLimit);
        return SyscallResult.Ok(newFd);
    }

    [Syscall(72, SupportLevel.Partial, Note = "F_SETOWN/F_GETOWN/F_SETOWN_EX/F_GETOWN_EX keep the description's owner, which gets SIGURG for TCP urgent data; no SIGIO for O_ASYNC, F_SETSIG/F_GETSIG accepted and ignored; F_NOTIFY, leases and F_SETLEASE are EINVAL")]
    public static SyscallResult Fcntl(ISyscallContext c)
    {
        var t = c.Task();
        var a = c.Arguments;
        int fd = (int)a.A0;
        int command = (int)a.A1;
        var description = t.Fds.Get(fd);
        if (description.IsPathOnly && command is not (LinuxConstants.F_DUPFD or LinuxConstants.F_DUPFD_CLOEXEC
            or LinuxConstants.F_GETFD or LinuxConstants.F_SETFD or LinuxConstants.F_GETFL))
        {
            // O_PATH descriptions answer only these commands (Linux's check_fcntl_cmd).
            return SyscallResult.Error(Errno.EBADF);
        }

        switch (command)
        {
            case LinuxConstants.F_DUPFD or LinuxConstants.F_DUPFD_CLOEXEC:
            {
                int limit = t.Group.Limits.OpenFilesLimit;
                if ((long)a.A2 < 0 || (long)a.A2 >= limit)
                {
                    return SyscallResult.Error(Errno.EINVAL);
                }

                description.AddReference();
                try
                {
                    return SyscallResult.Ok(t.Fds.Install(description, command == LinuxConstants.F_DUPFD_CLOEXEC, limit, (int)a.A2));
                }
                catch
                {
                    description.Release();
                    throw;
                }
            }

            case LinuxConstants.F_GETFD:
                return SyscallResult.Ok(t.Fds.GetCloseOnExec(fd) ? LinuxConstants.FD_CLOEXEC : 0);
            case LinuxConstants.F_SETFD:
                t.Fds.SetCloseOnExec(fd, (a.A2 & LinuxConstants.FD_CLOEXEC) != 0);
                return SyscallResult.Zero;
            case LinuxConstants.F_GETFL:
                return SyscallResult.Ok((long)(uint)description.Flags);
            case LinuxConstants.F_SETFL:
                if (description.IsPathOnly)
                {
                    return SyscallResult.Error(Errno.EBADF);
                }

                var settable = FileDescription.SettableFlags;
                description.Flags = (description.Flags & ~settable) | ((OpenFlags)(uint)a.A2 & settable);
                return SyscallResult.Zero;
            case LinuxConstants.F_GETPIPE_SZ:
                return description.Operations is PipeEnd end ? SyscallResult.Ok(end.Pipe.Capacity) : SyscallResult.Error(Errno.EBADF);
            case LinuxConstants.F_SETPIPE_SZ:
                return description.Operations is PipeEnd pipe ? SyscallResult.Ok(pipe.Pipe.Resize((int)Math.Min(a.A2, int.MaxValue))) : SyscallResult.Error(Errno.EBADF);
            case LinuxConstants.F_GETOWN:
                return SyscallResult.Ok(FileSignalOwner.GetOwn(t, description.SignalOwner));
            case LinuxConstants.F_SETOWN:
                description.SignalOwner = FileSignalOwner.FromSetOwn(t, (int)a.A2);
                return SyscallResult.Zero;
            case LinuxConstants.F_GETOWN_EX:
            {
                // struct f_owner_ex { int type; pid_t pid; }: with no owner, type F_OWNER_TID and pid 0.
                var owner = description.SignalOwner;
                Span<int> ex = [(int)(owner?.Kind ?? SignalOwnerKind.Thread), owner is not null && owner.Alive(t.Kernel) ? owner.Id : 0];
                t.Mm.Write(a.A2, System.Runtime.InteropServices.MemoryMarshal.AsBytes(ex));
                return SyscallResult.Zero;
            }

            case LinuxConstants.F_SETOWN_EX:
            {
                Span<int> ex = stackalloc int[2];
                t.Mm.Read(a.A2, System.Runtime.InteropServices.MemoryMarshal.AsBytes(ex));
                if ((uint)ex[0] > (uint)SignalOwnerKind.ProcessGroup)
                {
                    return SyscallResult.Error(Errno.EINVAL);
                }

                description.SignalOwner = FileSignalOwner.Make(t, (SignalOwnerKind)ex[0], ex[1]);
                return SyscallResult.Zero;
            }

            case LinuxConstants.F_GETSIG:
                return SyscallResult.Zero;
            case LinuxConstants.F_SETSIG:
                return SyscallResult.Zero;
            case LinuxConstants.F_GETLK or LinuxConstants.F_SETLK or LinuxConstants.F_SETLKW
                or LinuxConstants.F_OFD_GETLK or LinuxConstants.F_OFD_SETLK or LinuxConstants.F_OFD_SETLKW:
                return LockSyscalls.Fcntl(t, description, command, a.A2);
            case LinuxConstants.F_GET_SEALS or LinuxConstants.F_ADD_SEALS:
                return MemfdSyscalls.Fcntl(description, command == LinuxConstants.F_ADD_SEALS, a.A2);
            default:
                return SyscallResult.Error(Errno.EINVAL);
        }
    }

    [Syscall(16, SupportLevel.Partial, Note = "generic FIOCLEX/FIONCLEX/FIONBIO/FIOASYNC/FIONREAD; terminals and devices answer their own requests; sockets FIONREAD/SIOCINQ/SIOCOUTQ/SIOCATMARK, FIOSETOWN/SIOCSPGRP/FIOGETOWN/SIOCGPGRP (the owner SIGURG goes to) and SIOCGIFCONF/FLAGS/ADDR/NETMASK/INDEX/NAME/MTU/HWADDR for lo; others give ENOTTY")]
    public static SyscallResult Ioctl(ISyscallContext c)
    {
        var t = c.Task();
        var a = c.Arguments;
        int fd = (int)a.A0;
        uint request = (uint)a.A1;
        var description = t.Fds.Get(fd);
        if (description.IsPathOnly)
        {
            return SyscallResult.Error(Errno.EBADF);
        }

        switch (request)
        {
            case LinuxConstants.FIOCLEX:
                t.Fds.SetCloseOnExec(fd, true);
                return SyscallResult.Zero;
            case LinuxConstants.FIONCLEX:
                t.Fds.SetCloseOnExec(fd, false);
                return SyscallResult.Zero;
            case LinuxConstants.FIONBIO:
            {
                int on = t.Mm.ReadValue<int>(a.A2);
                description.Flags = on != 0 ? description.Flags | OpenFlags.NonBlocking : description.Flags & ~OpenFlags.NonBlocking;
                return SyscallResult.Zero;
            }

            case LinuxConstants.FIOASYNC:
            {
                int on = t.Mm.ReadValue<int>(a.A2);
                description.Flags = on != 0 ? description.Flags | OpenFlags.Async : description.Flags & ~OpenFlags.Async;
                return SyscallResult.Zero;
            }

            case LinuxConstants.FIOSETOWN or LinuxConstants.SIOCSPGRP when description.Operations is AppKernel.Networking.ISocket:
                // sock_ioctl: the socket file's owner, as F_SETOWN.
                description.SignalOwner = FileSignalOwner.FromSetOwn(t, t.Mm.ReadValue<int>(a.A2));
                return SyscallResult.Zero;
            case LinuxConstants.FIOGETOWN or LinuxConstants.SIOCGPGRP when description.Operations is AppKernel.Networking.ISocket:
                t.Mm.WriteValue(a.A2, FileSignalOwner.GetOwn(t, description.SignalOwner));
                return SyscallResult.Zero;
            case LinuxConstants.FIONREAD when description.Operations.Inode?.GetAttributes().Mode.IsRegular() == true:
            {
                long size = description.Operations.Inode.GetAttributes().Size;
                t.Mm.WriteValue(a.A2, (int)Math.Clamp(size - description.Offset, 0, int.MaxValue));
                return SyscallResult.Zero;
            }
        }

        return SyscallResult.Ok(description.Operations.Ioctl(request, a.A2, c));
    }

    [Syscall(22)]
    public static SyscallResult Pipe(ISyscallContext c) => MakePipe(c.Task(), c.Arguments.A0, 0);

    [Syscall(293)]
    public static SyscallResult Pipe2(ISyscallContext c) => MakePipe(c.Task(), c.Arguments.A0, (uint)c.Arguments.A1);

    private static SyscallResult MakePipe(KernelTask t, ulong fdsAddress, uint rawFlags)
    {
        var flags = (OpenFlags)rawFlags;
        const OpenFlags allowed = OpenFlags.CloseOnExec | OpenFlags.NonBlocking | OpenFlags.Direct;
        if ((flags & ~allowed) != 0)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        var pipe = new Pipe();
        string name = $"pipe:[{pipe.Id}]";
        var status = flags & (OpenFlags.NonBlocking | OpenFlags.Direct);
        var reader = new FileDescription(new PipeEnd(pipe, reader: true), null, OpenFlags.ReadOnly | status, name);
        var writer = new FileDescription(new PipeEnd(pipe, reader: false), null, OpenFlags.WriteOnly | status, name);
        bool cloexec = (flags & OpenFlags.CloseOnExec) != 0;
        int limit = t.Group.Limits.OpenFilesLimit;
        int readFd = -1, writeFd = -1;
        try
        {
            readFd = t.Fds.Install(reader, cloexec, limit);
            writeFd = t.Fds.Install(writer, cloexec, limit);
            Span<int> fds = [readFd, writeFd];
            t.Mm.Write(fdsAddress, System.Runtime.InteropServices.MemoryMarshal.AsBytes(fds));
            return SyscallResult.Zero;
        }
        catch
        {
            // Whatever was installed is closed through the table; the rest is released here.
            if (readFd >= 0)
            {
                t.Fds.Close(readFd);
            }
            else
            {
                reader.Release();
            }

            if (writeFd >= 0)
            {
                t.Fds.Close(writeFd);
            }
            else
            {
                writer.Release();
            }

            throw;
        }
    }

    [Syscall(74)]
    public static SyscallResult Fsync(ISyscallContext c)
    {
        c.Task().Fds.Get((int)c.Arguments.A0).Operations.Sync();
        return SyscallResult.Zero;
    }

    [Syscall(75)]
    public static SyscallResult Fdatasync(ISyscallContext c) => Fsync(c);

    [Syscall(77)]
    public static SyscallResult Ftruncate(ISyscallContext c)
    {
        var t = c.Task();
        var a = c.Arguments;
        var description = t.Fds.Get((int)a.A0);
        long length = (long)a.A1;
        if (length < 0)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        if (!description.CanWrite || description.Operations.Inode is not { } inode || !inode.GetAttributes().Mode.IsRegular())
        {
            return SyscallResult.Error(description.CanWrite && description.Operations.Inode is not null ? Errno.EINVAL : description.IsPathOnly ? Errno.EBADF : Errno.EINVAL);
        }

        if ((description.Flags & OpenFlags.Append) != 0)
        {
            return SyscallResult.Error(Errno.EPERM);
        }

        FileIo.RemovePrivileges(t, description);
        inode.SetAttributes(new AttributeUpdate(AttributeMask.Size, Size: length));
        t.Kernel.Vfs.Inotify.FileEvent(description.Path, inode, InotifyMask.Modify);
        return SyscallResult.Zero;
    }

    [Syscall(76)]
    public static SyscallResult Truncate(ISyscallContext c)
    {
        var t = c.Task();
        var a = c.Arguments;
        long length = (long)a.A1;
        if (length < 0)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        var path = t.Kernel.Vfs.Resolve(t.PathContext, t.ReadPath(a.A0), followFinal: true).Path;
        var attributes = path.Inode.GetAttributes();
        if (attributes.Mode.IsDirectory())
        {
            return SyscallResult.Error(Errno.EISDIR);
        }

        if (!attributes.Mode.IsRegular())
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        VirtualFileSystem.CheckWritableMount(path.Mount);
        Permissions.Check(attributes, t.Credentials, Permissions.Write);
        if (Permissions.RemovePrivileges(path.Inode, t.Credentials))
        {
            t.Kernel.Vfs.Inotify.FileEvent(path, path.Inode, InotifyMask.Attrib);
        }

        path.Inode.SetAttributes(new AttributeUpdate(AttributeMask.Size, Size: length));
        t.Kernel.Vfs.Inotify.FileEvent(path, path.Inode, InotifyMask.Modify);
        return SyscallResult.Zero;
    }

    [Syscall(217)]
    public static SyscallResult Getdents64(ISyscallContext c) => Getdents(c, is64: true);

    [Syscall(78)]
    public static SyscallResult GetdentsOld(ISyscallContext c) => Getdents(c, is64: false);

    private static SyscallResult Getdents(ISyscallContext c, bool is64)
    {
        var t = c.Task();
        var a = c.Arguments;
        var description = t.Fds.Get((int)a.A0);
        if (description.Operations is not DirectoryOperations directory)
        {
            return SyscallResult.Error(description.IsPathOnly ? Errno.EBADF : Errno.ENOTDIR);
        }

        // A directory removed while open lists nothing, not even "." and "..": Linux's
        // iterate_dir refuses a dead directory (the C library reads that as the end).
        if (directory.Path.Dentry.Deleted)
        {
            return SyscallResult.Error(Errno.ENOENT);
        }

        int capacity = (int)Math.Min(a.A2, 1 << 20);
        var buffer = new byte[capacity];
        int used = 0;
        lock (description.OffsetLock)
        {
            long offset = description.Offset;
            var path = directory.Path;
            bool Emit(string name, ulong ino, byte type, long next)
            {
                int nameLength = Encoding.UTF8.GetByteCount(name);
                int length = is64 ? (19 + nameLength + 1 + 7) & ~7 : (18 + nameLength + 2 + 7) & ~7;
                if (used + length > capacity)
                {
                    return false;
                }

                var record = buffer.AsSpan(used, length);
                record.Clear();
                BitConverter.TryWriteBytes(record, ino);
                BitConverter.TryWriteBytes(record[8..], next);
                BitConverter.TryWriteBytes(record[16..], (ushort)length);
                if (is64)
                {
                    record[18] = type;
                    Encoding.UTF8.GetBytes(name, record[19..]);
                }
                else
                {
                    Encoding.UTF8.GetBytes(name, record[18..]);
                    record[length - 1] = type;
                }

                used += length;
                offset = next;
                return true;
            }

            bool full = false;
            if (offset == 0)
            {
                full = !Emit(".", path.Inode.GetAttributes().Ino, 4, 1);
            }

            if (!full && offset == 1)
            {
                var parent = VirtualFileSystem.ParentOf(path, t.Fs.Root);
                full = !Emit("..", parent.Inode.GetAttributes().Ino, 4, 2);
            }

            if (!full)
            {
                foreach (var entry in path.Inode.ReadDirectory(Math.Max(offset, 2)))
                {
                    if (!Emit(entry.Name, entry.Ino, entry.Type.DirentType(), entry.NextOffset))
                    {
                        full = true;
                        break;
                    }
                }
            }

            if (used == 0 && full)
            {
                return SyscallResult.Error(Errno.EINVAL);
            }

            t.Mm.Write(a.A1, buffer.AsSpan(0, used));
            description.Offset = offset;
        }

        return SyscallResult.Ok(used);
    }
}
