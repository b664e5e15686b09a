using AppKernel.Sentry.Kernel;
using AppKernel.Sentry.Memory;
using AppKernel.Syscalls;
using AppKernel.Vfs;

namespace AppKernel.Sentry.Fs.Proc;

/// <summary>
/// /proc/PID/mem: the process's memory at file offset = address. Opening needs ptrace access
/// (EACCES otherwise) and holds on to the address space of that moment, as Linux's does: after
/// the process execs or exits, reads and writes move nothing. Protections are overridden where
/// they could be granted (FOLL_FORCE); an address nothing can reach is EIO.
/// </summary>
internal sealed class ProcMemFile(ProcFileSystem fileSystem, ulong ino, ThreadGroup group, int uid)
    : ProcNode(fileSystem, ino, AppKernel.Vfs.FileMode.Regular | (AppKernel.Vfs.FileMode)0x180, uid, uid)
{
    public override IFileOperations Open(OpenFlags flags)
    {
        var caller = KernelTask.Current ?? throw ErrnoException.Of(Errno.EACCES);
        if (!PtraceAccess.MayAttach(caller, group) || group.Memory is not { } memory)
        {
            throw ErrnoException.Of(Errno.EACCES);
        }

        return new Contents(this, memory);
    }

    private sealed class Contents(ProcMemFile file, MemoryManager memory) : IFileOperations
    {
        public IInode? Inode => file;

        public long Read(Span<byte> buffer, ref long offset) => Copy(buffer, ref offset, write: false);

        public long Write(ReadOnlySpan<byte> buffer, ref long offset, bool append)
        {
            // The copy goes through a Span; the source is never written.
            var source = buffer.ToArray();
            return Copy(source, ref offset, write: true);
        }

        private long Copy(Span<byte> buffer, ref long offset, bool write)
        {
            if (buffer.IsEmpty)
            {
                return 0;
            }

            int done = memory.CopyRemote((ulong)offset, buffer, write, force: true);
            if (done == 0)
            {
                throw ErrnoException.Of(Errno.EIO);
            }

            offset += done;
            return done;
        }
    }
}
