using AppKernel.Gofer.Native;
using AppKernel.Gofer.Protocol;

namespace AppKernel.Gofer.Client;

/// <summary>One connection to the Gofer, used by one thread at a time, with its own buffers.</summary>
internal sealed unsafe class PooledSocket(int fd)
{
    private uint nextTag;

    public int Fd { get; private set; } = fd;

    public byte[] SendBuffer { get; } = new byte[Wire.MaxMessage];

    public byte[] ReceiveBuffer { get; } = new byte[Wire.MaxMessage];

    /// <summary>The tag of the request being built or awaited.</summary>
    public uint LastTag { get; private set; }

    /// <summary>Set when the connection must not be reused (timeout, protocol error, end of file).</summary>
    public bool Broken { get; set; }

    /// <summary>Starts a request with a fresh tag.</summary>
    public MessageWriter Begin(Op op)
    {
        LastTag = ++nextTag;
        return new MessageWriter(SendBuffer, LastTag, op);
    }

    /// <summary>Sets SO_RCVTIMEO (infinite for <see cref="Timeout.InfiniteTimeSpan"/>).</summary>
    public void SetReceiveTimeout(TimeSpan timeout)
    {
        Host.TimeSpec value = default;
        if (timeout != Timeout.InfiniteTimeSpan && timeout > TimeSpan.Zero)
        {
            value.Seconds = (long)timeout.TotalSeconds;
            value.Nanoseconds = (long)(timeout.Ticks % TimeSpan.TicksPerSecond) * 100;
        }

        // struct timeval has the same layout as timespec's first field and a microseconds second.
        value.Nanoseconds /= 1000;
        Host.SetSockOpt(Fd, Host.SOL_SOCKET, Host.SO_RCVTIMEO, &value, (uint)sizeof(Host.TimeSpec));
    }

    /// <summary>Wakes a thread blocked on the socket (it reads end of file).</summary>
    public void Shutdown()
    {
        int fd = Fd;
        if (fd >= 0)
        {
            Host.Shutdown(fd, 2);
        }
    }

    public void Close()
    {
        int fd = Fd;
        Fd = -1;
        Host.CloseQuietly(fd);
    }
}
