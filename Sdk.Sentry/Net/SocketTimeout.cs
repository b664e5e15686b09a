using System.Buffers.Binary;

namespace AppKernel.Sentry.Net;

/// <summary>
/// SO_RCVTIMEO / SO_SNDTIMEO values as Linux keeps them: a struct timeval from the program,
/// stored in jiffies (HZ=250, so microseconds round up to 4 ms ticks), read back as a timeval.
/// Shared by the sandbox's own sockets and the host sockets of network mode host.
/// </summary>
internal static class SocketTimeout
{
    private const long Tick = 4_000_000;

    /// <summary>Nanoseconds (0 = wait forever) from a struct timeval; EINVAL when short, EDOM for bad microseconds.</summary>
    public static long Parse(ReadOnlySpan<byte> value)
    {
        if (value.Length < 16)
        {
            throw ErrnoException.Of(Errno.EINVAL);
        }

        long seconds = BinaryPrimitives.ReadInt64LittleEndian(value);
        long micros = BinaryPrimitives.ReadInt64LittleEndian(value[8..]);
        if (micros < 0 || micros >= 1_000_000)
        {
            throw ErrnoException.Of(Errno.EDOM);
        }

        // A negative time, or one too large for the jiffies counter, means no timeout.
        return seconds < 0 || seconds > long.MaxValue / 2_000_000_000 ? 0 : seconds * 1_000_000_000 + (micros * 1000 + Tick - 1) / Tick * Tick;
    }

    /// <summary>
    /// For SO_RCVTIMEO / SO_SNDTIMEO (old and new numbers) at level SOL_SOCKET: parses the value
    /// into the timeout it sets; false, with nothing set, for every other option.
    /// </summary>
    public static bool TrySetOption(int level, int name, ReadOnlySpan<byte> value, ref long receiveTimeout, ref long sendTimeout)
    {
        bool receive = name is SocketConstants.SO_RCVTIMEO_OLD or SocketConstants.SO_RCVTIMEO_NEW;
        if (level != SocketConstants.SOL_SOCKET || !(receive || name is SocketConstants.SO_SNDTIMEO_OLD or SocketConstants.SO_SNDTIMEO_NEW))
        {
            return false;
        }

        (receive ? ref receiveTimeout : ref sendTimeout) = Parse(value);
        return true;
    }

    /// <summary>Writes the timeout as a struct timeval, truncated to <paramref name="destination"/>; returns the length written.</summary>
    public static int Write(long nanoseconds, Span<byte> destination)
    {
        Span<byte> timeval = stackalloc byte[16];
        BinaryPrimitives.WriteInt64LittleEndian(timeval, nanoseconds / 1_000_000_000);
        BinaryPrimitives.WriteInt64LittleEndian(timeval[8..], nanoseconds % 1_000_000_000 / 1000);
        int n = Math.Min(timeval.Length, destination.Length);
        timeval[..n].CopyTo(destination);
        return n;
    }
}
