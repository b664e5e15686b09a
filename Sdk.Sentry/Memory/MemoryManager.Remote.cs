namespace AppKernel.Sentry.Memory;

// Another process reading or writing this address space: /proc/PID/mem and process_vm_readv/
// writev. Unlike the Sentry's own copies, these stop at the first page they cannot reach and
// report how much they moved, as Linux's access_remote_vm and process_vm_rw do.
internal sealed unsafe partial class MemoryManager
{
    /// <summary>
    /// Copies between <paramref name="buffer"/> and this address space from
    /// <paramref name="address"/> until the end of the buffer or the first byte that cannot be
    /// reached; returns the bytes copied (0 once the address space has been torn down).
    /// <paramref name="force"/> overrides protections as /proc/PID/mem does (see Translate).
    /// </summary>
    public int CopyRemote(ulong address, Span<byte> buffer, bool write, bool force)
    {
        int done = 0;
        lock (gate)
        {
            if (disposed)
            {
                return 0;
            }

            while (done < buffer.Length)
            {
                byte* pointer;
                ulong available;
                try
                {
                    pointer = Translate(address, write, force, out available);
                }
                catch (ErrnoException)
                {
                    break;
                }

                int n = (int)Math.Min((ulong)(buffer.Length - done), available);
                var program = new Span<byte>(pointer, n);
                if (write)
                {
                    buffer.Slice(done, n).CopyTo(program);
                }
                else
                {
                    program.CopyTo(buffer.Slice(done, n));
                }

                done += n;
                address += (ulong)n;
            }
        }

        return done;
    }
}
