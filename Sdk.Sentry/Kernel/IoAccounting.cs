namespace AppKernel.Sentry.Kernel;

/// <summary>
/// A process's I/O counters, as /proc/PID/io shows them: bytes and calls of the read and write
/// families (read, pread64, readv, preadv, preadv2, sendfile's input, and their write twins), on
/// any kind of file, counted when a call succeeds. Nothing reaches a block device in the sandbox,
/// so storage bytes are always 0.
/// </summary>
internal sealed class IoAccounting
{
    private long readBytes, writtenBytes, readCalls, writeCalls;

    public long ReadBytes => Volatile.Read(ref readBytes);

    public long WrittenBytes => Volatile.Read(ref writtenBytes);

    public long ReadCalls => Volatile.Read(ref readCalls);

    public long WriteCalls => Volatile.Read(ref writeCalls);

    /// <summary>Counts one successful call that moved <paramref name="bytes"/>; returns them, for use in a return statement.</summary>
    public long Count(bool write, long bytes)
    {
        if (write)
        {
            Interlocked.Increment(ref writeCalls);
            Interlocked.Add(ref writtenBytes, bytes);
        }
        else
        {
            Interlocked.Increment(ref readCalls);
            Interlocked.Add(ref readBytes, bytes);
        }

        return bytes;
    }
}
