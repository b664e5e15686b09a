using System.Text;
using AppKernel.Platform;
using AppKernel.Syscalls;

namespace AppKernel.Sentry.Memory;

// The Sentry reading and writing program memory: with the program's own permissions, so a
// bad pointer is EFAULT, exactly as copy_from_user/copy_to_user make it on Linux.
internal sealed unsafe partial class MemoryManager : IProcessMemory
{
    /// <summary>Copies program memory into <paramref name="destination"/>; EFAULT if any byte is not readable.</summary>
    public void Read(ulong address, Span<byte> destination)
    {
        if (destination.IsEmpty)
        {
            return;
        }

        lock (gate)
        {
            while (!destination.IsEmpty)
            {
                byte* pointer = Translate(address, write: false, out ulong available);
                int n = (int)Math.Min((ulong)destination.Length, available);
                new ReadOnlySpan<byte>(pointer, n).CopyTo(destination);
                destination = destination[n..];
                address += (ulong)n;
            }
        }
    }

    /// <summary>Copies <paramref name="source"/> into program memory; EFAULT if any byte is not writable.</summary>
    public void Write(ulong address, ReadOnlySpan<byte> source)
    {
        if (source.IsEmpty)
        {
            return;
        }

        lock (gate)
        {
            while (!source.IsEmpty)
            {
                byte* pointer = Translate(address, write: true, out ulong available);
                int n = (int)Math.Min((ulong)source.Length, available);
                source[..n].CopyTo(new Span<byte>(pointer, n));
                source = source[n..];
                address += (ulong)n;
            }
        }
    }

    /// <summary>
    /// Atomically replaces the 32-bit word at <paramref name="address"/> with <paramref name="update"/>(old),
    /// as a locked instruction in the program would (futex operations); returns the old value.
    /// </summary>
    public uint AtomicUpdate(ulong address, Func<uint, uint> update)
    {
        if ((address & 3) != 0)
        {
            throw ErrnoException.Of(Errno.EINVAL);
        }

        lock (gate)
        {
            uint* word = (uint*)Translate(address, write: true, out _);
            while (true)
            {
                uint old = Volatile.Read(ref *word);
                if (Interlocked.CompareExchange(ref *word, update(old), old) == old)
                {
                    return old;
                }
            }
        }
    }

    /// <summary>
    /// Where a shared futex lives: for a shared mapping, the memory-file position of the word (the
    /// same in every process that maps it); for a private one, null (the address space and address key it).
    /// </summary>
    public long? SharedFutexOffset(ulong address)
    {
        lock (gate)
        {
            if (!vmas.TryFind(address, out var vma, out _) || !vma.Value.Shared)
            {
                return null;
            }

            byte* pointer = Translate(address, write: false, out _);
            return (long)(pointer - file.Pointer(0));
        }
    }

    /// <summary>Fills program memory with zeros (the tail of a bss page).</summary>
    public void Zero(ulong address, ulong length)
    {
        lock (gate)
        {
            while (length > 0)
            {
                byte* pointer = Translate(address, write: true, out ulong available);
                int n = (int)Math.Min(length, available);
                new Span<byte>(pointer, n).Clear();
                length -= (ulong)n;
                address += (ulong)n;
            }
        }
    }

    /// <summary>Reads a NUL-terminated string; ENAMETOOLONG past <paramref name="maxLength"/> bytes, EFAULT on a bad pointer.</summary>
    public string ReadCString(ulong address, int maxLength = 4096)
    {
        lock (gate)
        {
            Span<byte> small = stackalloc byte[256];
            Span<byte> buffer = small;
            int length = 0;
            while (true)
            {
                byte* pointer = Translate(address + (ulong)length, write: false, out ulong available);
                var chunk = new ReadOnlySpan<byte>(pointer, (int)Math.Min(available, (ulong)(maxLength + 1 - length)));
                int nul = chunk.IndexOf((byte)0);
                int take = nul >= 0 ? nul : chunk.Length;
                if (length + take > buffer.Length)
                {
                    var bigger = new byte[Math.Max(buffer.Length * 2, length + take)];
                    buffer[..length].CopyTo(bigger);
                    buffer = bigger;
                }

                chunk[..take].CopyTo(buffer[length..]);
                length += take;
                if (nul >= 0)
                {
                    return Encoding.UTF8.GetString(buffer[..length]);
                }

                if (length > maxLength)
                {
                    throw ErrnoException.Of(Errno.ENAMETOOLONG);
                }
            }
        }
    }

    /// <summary>Reads a NUL-terminated string as raw bytes (paths are bytes on Linux).</summary>
    public byte[] ReadCStringBytes(ulong address, int maxLength)
    {
        lock (gate)
        {
            var result = new List<byte>();
            while (true)
            {
                byte* pointer = Translate(address + (ulong)result.Count, write: false, out ulong available);
                var chunk = new ReadOnlySpan<byte>(pointer, (int)Math.Min(available, (ulong)(maxLength + 1 - result.Count)));
                int nul = chunk.IndexOf((byte)0);
                int take = nul >= 0 ? nul : chunk.Length;
                result.AddRange(chunk[..take]);
                if (nul >= 0)
                {
                    return [.. result];
                }

                if (result.Count > maxLength)
                {
                    throw ErrnoException.Of(Errno.ENAMETOOLONG);
                }
            }
        }
    }

    /// <summary>
    /// The Sentry's pointer to program address <paramref name="address"/> and how many bytes
    /// from there stay in the same populated area and VMA. Populates and breaks COW as needed.
    /// </summary>
    private byte* Translate(ulong address, bool write, out ulong available) => Translate(address, write, force: false, out available);

    /// <summary>
    /// <see cref="Translate(ulong, bool, out ulong)"/>; with <paramref name="force"/> (Linux's
    /// FOLL_FORCE, for /proc/PID/mem) an area's protection may be overridden where it could be
    /// granted: reads of areas that may be readable, writes to private areas that may be writable
    /// (a copy on write, never into the file).
    /// </summary>
    private byte* Translate(ulong address, bool write, bool force, out ulong available)
    {
        if (!vmas.TryFind(address, out var vma, out _))
        {
            // Like get_user_pages, a copy into the area just below a stack grows the stack.
            if (!TryGrowStack(PageRoundDown(address)))
            {
                throw ErrnoException.Of(Errno.EFAULT);
            }

            vmas.TryFind(address, out vma, out _);
        }

        var access = vma.Value.Access;
        if (force)
        {
            bool allowed = write
                ? (access & MemoryAccess.Write) != 0 || (!vma.Value.Shared && (vma.Value.MaxAccess & MemoryAccess.Write) != 0)
                : (access & MemoryAccess.Read) != 0 || (vma.Value.MaxAccess & MemoryAccess.Read) != 0;

            // A no-access area is never populated; forcing reaches only pages already there.
            if (!allowed || (access == MemoryAccess.None && !pmas.TryFind(address, out _, out _)))
            {
                throw ErrnoException.Of(Errno.EFAULT);
            }
        }
        else if (access == MemoryAccess.None || (write && (access & MemoryAccess.Write) == 0))
        {
            throw ErrnoException.Of(Errno.EFAULT);
        }

        if (!pmas.TryFind(address, out var pma, out _))
        {
            ulong page = PageRoundDown(address);
            ulong start = Math.Max(vma.Start, page & ~(FaultChunk - 1));
            PopulateLocked(start, Math.Min(vma.End, start + FaultChunk));
            if (!pmas.TryFind(address, out pma, out _))
            {
                throw ErrnoException.Of(Errno.EFAULT);
            }
        }

        if (write && pma.Value.Cow)
        {
            BreakCow(PageRoundDown(address), vma.Value);
            pmas.TryFind(address, out pma, out _);
        }

        ulong end = Math.Min(pma.End, vma.End);

        long offset = pma.Value.FileOffset + (long)(address - pma.Start);
        available = end - address;
        return file.Pointer(offset);
    }
}
