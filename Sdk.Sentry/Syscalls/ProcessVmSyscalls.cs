using AppKernel.Sentry.Abi;
using AppKernel.Sentry.Kernel;
using AppKernel.Syscalls;

namespace AppKernel.Sentry.Syscalls;

/// <summary>process_vm_readv and process_vm_writev: copies between this process and another's memory.</summary>
internal static class ProcessVmSyscalls
{
    private const int IovMax = 1024;
    private const int Chunk = 64 << 10;

    [Syscall(310)]
    public static SyscallResult ProcessVmReadv(ISyscallContext c) => Transfer(c, write: false);

    [Syscall(311)]
    public static SyscallResult ProcessVmWritev(ISyscallContext c) => Transfer(c, write: true);

    // Linux's order: flags, the local vectors (an empty total moves nothing and looks no further),
    // the remote vectors, the target (ESRCH), ptrace access (EPERM). The copy goes remote vector by
    // remote vector and stops at the first page either side cannot reach; whatever moved by then
    // is the result, EFAULT only when nothing did.
    private static SyscallResult Transfer(ISyscallContext c, bool write)
    {
        var t = c.Task();
        var a = c.Arguments;
        if (a.A5 != 0)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        var local = ReadVectors(t, a.A1, a.A2, out long localTotal);
        if (localTotal == 0)
        {
            return SyscallResult.Ok(0);
        }

        var remote = ReadVectors(t, a.A3, a.A4, out _);
        var target = t.Kernel.Pids.FindTask((int)a.A0)?.Group;
        if (target is null || (int)a.A0 <= 0)
        {
            return SyscallResult.Error(Errno.ESRCH);
        }

        if (!PtraceAccess.MayAttach(t, target))
        {
            return SyscallResult.Error(Errno.EPERM);
        }

        var memory = target.Memory;
        if (memory is null)
        {
            return SyscallResult.Error(Errno.ESRCH);
        }

        var buffer = new byte[Chunk];
        long done = 0;
        int localIndex = 0;
        ulong localOffset = 0;
        bool stopped = false;
        foreach (var r in remote)
        {
            ulong remoteOffset = 0;
            while (!stopped && remoteOffset < r.Length)
            {
                while (localIndex < local.Length && localOffset == local[localIndex].Length)
                {
                    localIndex++;
                    localOffset = 0;
                }

                if (localIndex == local.Length)
                {
                    return SyscallResult.Ok(done);
                }

                var l = local[localIndex];
                int n = (int)Math.Min((ulong)Chunk, Math.Min(r.Length - remoteOffset, l.Length - localOffset));
                var span = buffer.AsSpan(0, n);
                int moved;
                if (write)
                {
                    moved = t.Mm.CopyRemote(l.Base + localOffset, span, write: false, force: false);
                    moved = memory.CopyRemote(r.Base + remoteOffset, span[..moved], write: true, force: false);
                }
                else
                {
                    moved = memory.CopyRemote(r.Base + remoteOffset, span, write: false, force: false);
                    moved = t.Mm.CopyRemote(l.Base + localOffset, span[..moved], write: true, force: false);
                }

                done += moved;
                remoteOffset += (ulong)moved;
                localOffset += (ulong)moved;
                stopped = moved < n;
            }

            if (stopped)
            {
                break;
            }
        }

        return done > 0 || !stopped ? SyscallResult.Ok(done) : SyscallResult.Error(Errno.EFAULT);
    }

    private static LinuxIovec[] ReadVectors(KernelTask t, ulong address, ulong count, out long total)
    {
        if (count > IovMax)
        {
            throw ErrnoException.Of(Errno.EINVAL);
        }

        var vectors = new LinuxIovec[count];
        total = 0;
        for (int i = 0; i < vectors.Length; i++)
        {
            vectors[i] = t.Mm.ReadValue<LinuxIovec>(address + (ulong)i * 16);
            if ((long)vectors[i].Length < 0 || (total += (long)vectors[i].Length) < 0)
            {
                throw ErrnoException.Of(Errno.EINVAL);
            }
        }

        return vectors;
    }
}
