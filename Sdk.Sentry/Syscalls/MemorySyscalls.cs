using AppKernel.Platform;
using AppKernel.Sentry.Abi;
using AppKernel.Sentry.Kernel;
using AppKernel.Sentry.Memory;
using AppKernel.Sentry.Vfs;
using AppKernel.Syscalls;
using AppKernel.Vfs;
using static AppKernel.Sentry.Abi.LinuxConstants;

namespace AppKernel.Sentry.Syscalls;

/// <summary>mmap and the calls that change or query an address space.</summary>
internal static class MemorySyscalls
{
    // FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, what madvise_remove asks of the file.
    private const int FallocPunchHoleKeepSize = 2 | 1;

    private const int KnownMapFlags = MAP_TYPE | MAP_FIXED | MAP_ANONYMOUS | MAP_32BIT | MAP_GROWSDOWN | MAP_DENYWRITE |
        MAP_EXECUTABLE | MAP_LOCKED | MAP_NORESERVE | MAP_POPULATE | MAP_NONBLOCK | MAP_STACK | MAP_HUGETLB | MAP_SYNC |
        MAP_FIXED_NOREPLACE | MAP_UNINITIALIZED;

    [Syscall(9, SupportLevel.Partial, Note = "MAP_HUGETLB gives EINVAL; MAP_32BIT is a placement hint")]
    public static SyscallResult Mmap(ISyscallContext c)
    {
        var t = c.Task();
        var a = c.Arguments;
        ulong address = a.A0;
        ulong length = a.A1;
        int prot = (int)a.A2;
        int flags = (int)a.A3;
        int fd = (int)a.A4;
        long offset = (long)a.A5;
        var mm = t.Mm;

        // Linux looks the file up before it checks anything else (EBADF first).
        var file = (flags & MAP_ANONYMOUS) == 0 ? t.Fds.Get(fd) : null;
        if (length == 0 || (offset & (long)MemoryManager.PageMask) != 0)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        ulong rounded = MemoryManager.PageRoundUp(length);
        if (rounded < length || rounded > mm.MaxAddress)
        {
            return SyscallResult.Error(Errno.ENOMEM);
        }

        int type = flags & MAP_TYPE;
        if (type is not (MAP_SHARED or MAP_PRIVATE or MAP_SHARED_VALIDATE))
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        // Anonymous mappings know only MAP_SHARED and MAP_PRIVATE; the validating type needs a file.
        if (type == MAP_SHARED_VALIDATE && file is null)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        if (type == MAP_SHARED_VALIDATE && (flags & ~KnownMapFlags) != 0)
        {
            return SyscallResult.Error(Errno.EOPNOTSUPP);
        }

        if ((flags & MAP_HUGETLB) != 0 || (prot & ~(PROT_READ | PROT_WRITE | PROT_EXEC)) != 0)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        bool isFixed = (flags & (MAP_FIXED | MAP_FIXED_NOREPLACE)) != 0;
        if (isFixed && (address & MemoryManager.PageMask) != 0)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        if (offset < 0 || offset + (long)rounded < offset)
        {
            return SyscallResult.Error(Errno.EOVERFLOW);
        }

        var request = new MmapRequest
        {
            Address = (flags & MAP_32BIT) != 0 && address == 0 ? 0x40000000UL : address,
            Length = rounded,
            Access = (MemoryAccess)prot,
            Fixed = isFixed,
            NoReplace = (flags & MAP_FIXED_NOREPLACE) != 0 && (flags & MAP_FIXED) == 0,
            Shared = type != MAP_PRIVATE,
            GrowsDown = (flags & MAP_GROWSDOWN) != 0,
            Populate = (flags & MAP_POPULATE) != 0,
        };

        if (file is not null)
        {
            if (file.IsPathOnly)
            {
                return SyscallResult.Error(Errno.EBADF);
            }

            if (!file.CanRead)
            {
                return SyscallResult.Error(Errno.EACCES);
            }

            if (request.Shared && (prot & PROT_WRITE) != 0 && (!file.CanWrite || (file.Flags & OpenFlags.Append) != 0))
            {
                return SyscallResult.Error(Errno.EACCES);
            }

            bool mayWrite = MemfdSyscalls.CheckMapping(file, request.Shared, (prot & PROT_WRITE) != 0);
            var inode = file.Operations.Inode;
            var attributes = inode?.GetAttributes() ?? default;
            bool devZero = attributes.Mode.Type() == AppKernel.Vfs.FileMode.CharDevice && Major(attributes.Rdev) == 1 && Minor(attributes.Rdev) == 5;
            if (!devZero)
            {
                request.Mappable = file.Operations.Mappable ?? throw ErrnoException.Of(Errno.ENODEV);
                request.FileOffset = offset;
                request.Owner = file;
                request.Name = file.Name;
                request.Device = file.Path?.Mount.Device ?? 0;
                request.Inode = attributes.Ino;
                if (request.Shared && (!file.CanWrite || !mayWrite))
                {
                    request.MaxAccess = MemoryAccess.Read | MemoryAccess.Execute;
                }
            }
        }

        return SyscallResult.Ok(mm.Map(request));
    }

    [Syscall(11)]
    public static SyscallResult Munmap(ISyscallContext c)
    {
        var t = c.Task();
        ulong address = c.Arguments.A0;
        ulong length = MemoryManager.PageRoundUp(c.Arguments.A1);
        if ((address & MemoryManager.PageMask) != 0 || c.Arguments.A1 == 0 || length < c.Arguments.A1 ||
            address + length > t.Mm.MaxAddress || address + length < address)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        t.Mm.Unmap(address, length);
        return SyscallResult.Zero;
    }

    [Syscall(10)]
    public static SyscallResult Mprotect(ISyscallContext c)
    {
        var t = c.Task();
        ulong address = c.Arguments.A0;
        ulong length = MemoryManager.PageRoundUp(c.Arguments.A1);
        int prot = (int)c.Arguments.A2;
        bool growsDown = (prot & PROT_GROWSDOWN) != 0;
        if ((address & MemoryManager.PageMask) != 0 || length < c.Arguments.A1 ||
            (prot & ~(PROT_READ | PROT_WRITE | PROT_EXEC | PROT_GROWSDOWN | PROT_GROWSUP)) != 0 ||
            (growsDown && (prot & PROT_GROWSUP) != 0))
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        if (length == 0)
        {
            return SyscallResult.Zero;
        }

        if (address + length > t.Mm.MaxAddress || address + length < address)
        {
            return SyscallResult.Error(Errno.ENOMEM);
        }

        t.Mm.Protect(address, length, (MemoryAccess)(prot & 7), growsDown);
        return SyscallResult.Zero;
    }

    [Syscall(12)]
    public static SyscallResult Brk(ISyscallContext c) => SyscallResult.Ok(c.Task().Mm.SetBrk(c.Arguments.A0));

    [Syscall(25, SupportLevel.Partial, Note = "MREMAP_DONTUNMAP and duplicating a shared mapping (old_size 0) give EINVAL")]
    public static SyscallResult Mremap(ISyscallContext c)
    {
        var t = c.Task();
        var a = c.Arguments;
        ulong oldAddress = a.A0;
        ulong oldLength = MemoryManager.PageRoundUp(a.A1);
        ulong newLength = MemoryManager.PageRoundUp(a.A2);
        int flags = (int)a.A3;
        ulong newAddress = a.A4;
        if ((flags & ~(MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP)) != 0 || (flags & MREMAP_DONTUNMAP) != 0 ||
            ((flags & MREMAP_FIXED) != 0 && (flags & MREMAP_MAYMOVE) == 0) ||
            (oldAddress & MemoryManager.PageMask) != 0 || newLength == 0 || newLength < a.A2 ||
            ((flags & MREMAP_FIXED) != 0 && (newAddress & MemoryManager.PageMask) != 0))
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        return SyscallResult.Ok(t.Mm.Remap(oldAddress, oldLength, newLength,
            (flags & MREMAP_MAYMOVE) != 0, (flags & MREMAP_FIXED) != 0, newAddress));
    }

    [Syscall(28, SupportLevel.Partial, Note = "MADV_REMOVE punches the hole in the file behind a shared file mapping (every mapping of it sees zeros, private copies stay); on shared anonymous memory it gives the caller fresh zero pages that a forked sharer no longer shares")]
    public static SyscallResult Madvise(ISyscallContext c)
    {
        var t = c.Task();
        ulong address = c.Arguments.A0;
        ulong length = MemoryManager.PageRoundUp(c.Arguments.A1);
        int advice = (int)c.Arguments.A2;
        if ((address & MemoryManager.PageMask) != 0 || length < c.Arguments.A1)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        bool known = advice is >= MADV_NORMAL and <= MADV_WILLNEED or MADV_DONTNEED or (>= MADV_FREE and <= MADV_COLLAPSE) or MADV_HWPOISON;
        if (!known || advice == MADV_HWPOISON)
        {
            return SyscallResult.Error(advice == MADV_HWPOISON ? Errno.EPERM : Errno.EINVAL);
        }

        if (length == 0)
        {
            return SyscallResult.Zero;
        }

        if (advice == MADV_REMOVE)
        {
            return Remove(t, address, length);
        }

        t.Mm.Advise(address, length, advice);
        return SyscallResult.Zero;
    }

    /// <summary>MADV_REMOVE: a hole punched in the files behind shared mappings (with no memory-manager lock held).</summary>
    private static SyscallResult Remove(KernelTask t, ulong address, ulong length)
    {
        var holes = t.Mm.PrepareRemove(address, length, out bool fullyMapped);
        try
        {
            foreach (var (owner, offset, size) in holes)
            {
                ((FileDescription)owner).Operations.Allocate(FallocPunchHoleKeepSize, offset, size);
            }
        }
        finally
        {
            foreach (var (owner, _, _) in holes)
            {
                owner.DropMappingReference();
            }
        }

        return fullyMapped ? SyscallResult.Zero : SyscallResult.Error(Errno.ENOMEM);
    }

    [Syscall(26)]
    public static SyscallResult Msync(ISyscallContext c)
    {
        var t = c.Task();
        ulong address = c.Arguments.A0;
        ulong length = MemoryManager.PageRoundUp(c.Arguments.A1);
        int flags = (int)c.Arguments.A2;
        if ((address & MemoryManager.PageMask) != 0 || (flags & ~(MS_ASYNC | MS_INVALIDATE | MS_SYNC)) != 0 ||
            ((flags & MS_ASYNC) != 0 && (flags & MS_SYNC) != 0))
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        if (length == 0)
        {
            return SyscallResult.Zero;
        }

        t.Mm.Sync(address, length);
        return SyscallResult.Zero;
    }

    [Syscall(27)]
    public static SyscallResult Mincore(ISyscallContext c)
    {
        var t = c.Task();
        ulong address = c.Arguments.A0;
        ulong length = c.Arguments.A1;
        if ((address & MemoryManager.PageMask) != 0)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        ulong rounded = MemoryManager.PageRoundUp(length);
        if (rounded > t.Mm.MaxAddress || address + rounded > t.Mm.MaxAddress)
        {
            return SyscallResult.Error(Errno.ENOMEM);
        }

        var vector = new byte[rounded / MemoryManager.PageSize];
        t.Mm.Residency(address, rounded, vector);
        t.Mm.Write(c.Arguments.A2, vector);
        return SyscallResult.Zero;
    }

    [Syscall(149, SupportLevel.Partial, Note = "memory is never swapped, so locking only checks the range")]
    public static SyscallResult Mlock(ISyscallContext c) => CheckMapped(c, c.Arguments.A0, c.Arguments.A1);

    [Syscall(325, SupportLevel.Partial, Note = "as mlock; MLOCK_ONFAULT accepted")]
    public static SyscallResult Mlock2(ISyscallContext c) =>
        (c.Arguments.A2 & ~1UL) != 0 ? SyscallResult.Error(Errno.EINVAL) : CheckMapped(c, c.Arguments.A0, c.Arguments.A1);

    [Syscall(150, SupportLevel.Partial, Note = "as mlock")]
    public static SyscallResult Munlock(ISyscallContext c) => CheckMapped(c, c.Arguments.A0, c.Arguments.A1);

    [Syscall(151, SupportLevel.Partial, Note = "as mlock")]
    public static SyscallResult Mlockall(ISyscallContext c) =>
        c.Arguments.A0 == 0 || (c.Arguments.A0 & ~7UL) != 0 ? SyscallResult.Error(Errno.EINVAL) : SyscallResult.Zero;

    [Syscall(152, SupportLevel.Partial, Note = "as mlock")]
    public static SyscallResult Munlockall(ISyscallContext c) => SyscallResult.Zero;

    private static SyscallResult CheckMapped(ISyscallContext c, ulong address, ulong length)
    {
        var t = c.Task();
        ulong start = MemoryManager.PageRoundDown(address);
        ulong end = MemoryManager.PageRoundUp(address + length);
        if (end < start)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        var buffer = new byte[(end - start) / MemoryManager.PageSize];
        t.Mm.Residency(start, end - start, buffer);
        return SyscallResult.Zero;
    }
}
