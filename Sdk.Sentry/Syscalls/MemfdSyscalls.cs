using System.Text;
using AppKernel.Sentry.Fs.Tmpfs;
using AppKernel.Sentry.Kernel;
using AppKernel.Sentry.Vfs;
using AppKernel.Syscalls;
using AppKernel.Vfs;
using FileMode = AppKernel.Vfs.FileMode;

namespace AppKernel.Sentry.Syscalls;

/// <summary>memfd_create and fcntl's F_ADD_SEALS/F_GET_SEALS: anonymous tmpfs files in the kernel's own tmpfs instance.</summary>
internal static class MemfdSyscalls
{
    private const uint MFD_CLOEXEC = 1, MFD_ALLOW_SEALING = 2, MFD_HUGETLB = 4, MFD_NOEXEC_SEAL = 8, MFD_EXEC = 0x10;
    private const int AllSeals = 0x3F;

    // NAME_MAX less the "memfd:" prefix.
    private const int MaxName = 249;

    [Syscall(319, SupportLevel.Partial, Note = "MFD_HUGETLB gives EINVAL; sealing is kept on the file: F_SEAL_WRITE is EBUSY while a shared mapping that may write exists, sealed files refuse writable shared mmaps (EPERM) and mprotect adding PROT_WRITE to their shared mappings (EACCES)")]
    public static SyscallResult MemfdCreate(ISyscallContext c)
    {
        var t = c.Task();
        var a = c.Arguments;
        uint flags = (uint)a.A1;
        if ((flags & ~(MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_NOEXEC_SEAL | MFD_EXEC)) != 0
            || (flags & (MFD_EXEC | MFD_NOEXEC_SEAL)) == (MFD_EXEC | MFD_NOEXEC_SEAL))
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        string name;
        try
        {
            name = t.ReadPath(a.A0);
        }
        catch (ErrnoException e) when (e.Errno == Errno.ENAMETOOLONG)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        if (Encoding.UTF8.GetByteCount(name) > MaxName)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        bool noExec = (flags & MFD_NOEXEC_SEAL) != 0;
        var mode = noExec ? (FileMode)0x1B6 : (FileMode)0x1FF;
        var file = t.Kernel.MemfdFileSystem.CreateAnonymousFile(mode, new FileOwner(t.Credentials.FsUid, t.Credentials.FsGid));
        if ((flags & MFD_ALLOW_SEALING) != 0 || noExec)
        {
            file.InitialSeals(noExec ? TmpfsRegularFile.SealExec : 0);
        }

        var operations = file.Open(OpenFlags.ReadWrite | OpenFlags.LargeFile);
        var description = new FileDescription(operations, null, OpenFlags.ReadWrite | OpenFlags.LargeFile, $"/memfd:{name} (deleted)");
        return SyscallResult.Ok(AnonymousFiles.Install(t, description, (flags & MFD_CLOEXEC) != 0));
    }

    /// <summary>fcntl F_ADD_SEALS and F_GET_SEALS: tmpfs files only (EINVAL for others).</summary>
    public static SyscallResult Fcntl(FileDescription description, bool add, ulong argument)
    {
        if (add)
        {
            if (!description.CanWrite)
            {
                return SyscallResult.Error(Errno.EPERM);
            }

            if ((argument & ~(ulong)AllSeals) != 0)
            {
                return SyscallResult.Error(Errno.EINVAL);
            }
        }

        if (description.Operations is not TmpfsFileDescription tmpfs)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        if (!add)
        {
            return SyscallResult.Ok(tmpfs.File.Seals);
        }

        tmpfs.File.AddSeals((int)argument);
        return SyscallResult.Zero;
    }

    /// <summary>
    /// mmap of <paramref name="description"/>: a shared writable mapping of a file sealed against
    /// writes (F_SEAL_WRITE, F_SEAL_FUTURE_WRITE) is refused (EPERM). Returns whether a shared
    /// mapping may ever write (Linux's VM_MAYWRITE): not for such a file, so mprotect adding
    /// PROT_WRITE later gives EACCES.
    /// </summary>
    public static bool CheckMapping(FileDescription description, bool shared, bool writable)
    {
        if (shared && description.Operations is TmpfsFileDescription tmpfs
            && (tmpfs.File.Seals & (TmpfsRegularFile.SealWrite | TmpfsRegularFile.SealFutureWrite)) != 0)
        {
            if (writable)
            {
                throw ErrnoException.Of(Errno.EPERM);
            }

            return false;
        }

        return true;
    }
}
