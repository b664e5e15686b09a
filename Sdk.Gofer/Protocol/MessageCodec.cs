using System.Buffers.Binary;
using System.Text;

namespace AppKernel.Gofer.Protocol;

/// <summary>A malformed or unexpected message: the peer does not speak the protocol.</summary>
internal sealed class ProtocolException(string message) : Exception(message);

/// <summary>Builds one message in a caller-owned buffer: header first, payload appended.</summary>
internal ref struct MessageWriter
{
    private readonly Span<byte> buffer;
    private int position;

    /// <summary>Starts a message with its header; the size is filled by <see cref="Finish"/>.</summary>
    public MessageWriter(Span<byte> buffer, uint tag, Op op, ushort flags = 0, int status = 0)
    {
        this.buffer = buffer;
        BinaryPrimitives.WriteUInt32LittleEndian(buffer[4..], tag);
        BinaryPrimitives.WriteUInt16LittleEndian(buffer[8..], (ushort)op);
        BinaryPrimitives.WriteUInt16LittleEndian(buffer[10..], flags);
        BinaryPrimitives.WriteInt32LittleEndian(buffer[12..], status);
        position = Wire.HeaderSize;
    }

    /// <summary>The whole buffer (for patching a field written earlier).</summary>
    public readonly Span<byte> Buffer => buffer;

    /// <summary>Bytes written so far.</summary>
    public readonly int Length => position;

    /// <summary>Room left.</summary>
    public readonly int Remaining => buffer.Length - position;

    public void U8(byte value) => Take(1)[0] = value;

    public void U16(ushort value) => BinaryPrimitives.WriteUInt16LittleEndian(Take(2), value);

    public void U32(uint value) => BinaryPrimitives.WriteUInt32LittleEndian(Take(4), value);

    public void I32(int value) => BinaryPrimitives.WriteInt32LittleEndian(Take(4), value);

    public void U64(ulong value) => BinaryPrimitives.WriteUInt64LittleEndian(Take(8), value);

    public void I64(long value) => BinaryPrimitives.WriteInt64LittleEndian(Take(8), value);

    /// <summary>A string as u16 length + UTF-8.</summary>
    public void String(string value)
    {
        int length = Encoding.UTF8.GetByteCount(value);
        if (length > ushort.MaxValue)
        {
            throw new ProtocolException("string too long for the wire");
        }

        U16((ushort)length);
        Encoding.UTF8.GetBytes(value, Take(length));
    }

    /// <summary>Raw bytes as u16 length + bytes.</summary>
    public void Bytes(ReadOnlySpan<byte> value)
    {
        if (value.Length > ushort.MaxValue)
        {
            throw new ProtocolException("string too long for the wire");
        }

        U16((ushort)value.Length);
        value.CopyTo(Take(value.Length));
    }

    /// <summary>Drops what was written after <paramref name="length"/> bytes.</summary>
    public void Truncate(int length)
    {
        if ((uint)length > (uint)position || length < Wire.HeaderSize)
        {
            throw new ArgumentOutOfRangeException(nameof(length));
        }

        position = length;
    }

    /// <summary>Sets a flag in the header after the fact.</summary>
    public readonly void SetFlags(ushort flags) => BinaryPrimitives.WriteUInt16LittleEndian(buffer[10..], flags);

    /// <summary>Writes the size into the header and returns the whole message.</summary>
    public readonly ReadOnlySpan<byte> Finish()
    {
        BinaryPrimitives.WriteUInt32LittleEndian(buffer, (uint)position);
        return buffer[..position];
    }

    private Span<byte> Take(int count)
    {
        if (count > buffer.Length - position)
        {
            throw new ProtocolException("message larger than the protocol allows");
        }

        var span = buffer.Slice(position, count);
        position += count;
        return span;
    }
}

/// <summary>Reads one received message: the header is parsed and checked at construction.</summary>
internal ref struct MessageReader
{
    private readonly ReadOnlySpan<byte> buffer;
    private int position;

    /// <summary>Parses the header of <paramref name="message"/> (exactly the bytes received).</summary>
    public MessageReader(ReadOnlySpan<byte> message)
    {
        if (message.Length < Wire.HeaderSize)
        {
            throw new ProtocolException($"short message ({message.Length} bytes)");
        }

        uint size = BinaryPrimitives.ReadUInt32LittleEndian(message);
        if (size != (uint)message.Length)
        {
            throw new ProtocolException($"message size {size} does not match the {message.Length} bytes received");
        }

        buffer = message;
        Tag = BinaryPrimitives.ReadUInt32LittleEndian(message[4..]);
        Op = (Op)BinaryPrimitives.ReadUInt16LittleEndian(message[8..]);
        Flags = BinaryPrimitives.ReadUInt16LittleEndian(message[10..]);
        Status = BinaryPrimitives.ReadInt32LittleEndian(message[12..]);
        position = Wire.HeaderSize;
    }

    public uint Tag { get; }

    public Op Op { get; }

    public ushort Flags { get; }

    public int Status { get; }

    /// <summary>True when every byte has been read.</summary>
    public readonly bool AtEnd => position == buffer.Length;

    public byte U8() => Take(1)[0];

    public ushort U16() => BinaryPrimitives.ReadUInt16LittleEndian(Take(2));

    public uint U32() => BinaryPrimitives.ReadUInt32LittleEndian(Take(4));

    public int I32() => BinaryPrimitives.ReadInt32LittleEndian(Take(4));

    public ulong U64() => BinaryPrimitives.ReadUInt64LittleEndian(Take(8));

    public long I64() => BinaryPrimitives.ReadInt64LittleEndian(Take(8));

    /// <summary>The raw bytes of a u16-length string.</summary>
    public ReadOnlySpan<byte> StringBytes() => Take(U16());

    /// <summary>A u16-length UTF-8 string.</summary>
    public string String() => Encoding.UTF8.GetString(StringBytes());

    /// <summary>The remaining bytes as a UTF-8 string (error diagnostics), or null when none.</summary>
    public string? Rest()
    {
        if (AtEnd)
        {
            return null;
        }

        var rest = buffer[position..];
        position = buffer.Length;
        return Encoding.UTF8.GetString(rest);
    }

    private ReadOnlySpan<byte> Take(int count)
    {
        if (count > buffer.Length - position)
        {
            throw new ProtocolException($"truncated {Op} message");
        }

        var span = buffer.Slice(position, count);
        position += count;
        return span;
    }
}
