using System.Buffers.Binary;

namespace AppKernel.Sentry.Loader;

/// <summary>A parsed ELF64 x86-64 header and program headers (what execve needs, nothing more).</summary>
internal sealed class ElfFile
{
    public const ushort ET_EXEC = 2, ET_DYN = 3;
    public const uint PT_LOAD = 1, PT_DYNAMIC = 2, PT_INTERP = 3, PT_PHDR = 6, PT_GNU_STACK = 0x6474e551;
    public const uint PF_X = 1, PF_W = 2, PF_R = 4;
    public const int HeaderSize = 64, ProgramHeaderSize = 56;

    public ushort Type { get; private init; }

    public ulong Entry { get; private init; }

    public ulong ProgramHeaderOffset { get; private init; }

    public int ProgramHeaderCount { get; private init; }

    public IReadOnlyList<ProgramHeader> ProgramHeaders { get; private init; } = [];

    /// <summary>Parses the header; ENOEXEC for anything that is not a loadable ELF64 x86-64 file.</summary>
    public static ElfFile Parse(ReadOnlySpan<byte> header, Func<long, int, byte[]> readAt)
    {
        if (header.Length < HeaderSize || header[0] != 0x7f || header[1] != (byte)'E' || header[2] != (byte)'L' || header[3] != (byte)'F')
        {
            throw ErrnoException.Of(Errno.ENOEXEC);
        }

        // ELFCLASS64, little-endian, version 1, EM_X86_64.
        if (header[4] != 2 || header[5] != 1 || header[6] != 1)
        {
            throw ErrnoException.Of(Errno.ENOEXEC);
        }

        ushort type = BinaryPrimitives.ReadUInt16LittleEndian(header[16..]);
        ushort machine = BinaryPrimitives.ReadUInt16LittleEndian(header[18..]);
        if (machine != 62 || (type != ET_EXEC && type != ET_DYN))
        {
            throw ErrnoException.Of(Errno.ENOEXEC);
        }

        ulong phoff = BinaryPrimitives.ReadUInt64LittleEndian(header[32..]);
        ushort phentsize = BinaryPrimitives.ReadUInt16LittleEndian(header[54..]);
        ushort phnum = BinaryPrimitives.ReadUInt16LittleEndian(header[56..]);
        if (phentsize != ProgramHeaderSize || phnum == 0 || phnum > 65536 / ProgramHeaderSize)
        {
            throw ErrnoException.Of(Errno.ENOEXEC);
        }

        byte[] table = readAt((long)phoff, phnum * ProgramHeaderSize);
        if (table.Length < phnum * ProgramHeaderSize)
        {
            throw ErrnoException.Of(Errno.ENOEXEC);
        }

        var headers = new ProgramHeader[phnum];
        for (int i = 0; i < phnum; i++)
        {
            var h = table.AsSpan(i * ProgramHeaderSize, ProgramHeaderSize);
            headers[i] = new ProgramHeader(
                BinaryPrimitives.ReadUInt32LittleEndian(h),
                BinaryPrimitives.ReadUInt32LittleEndian(h[4..]),
                BinaryPrimitives.ReadUInt64LittleEndian(h[8..]),
                BinaryPrimitives.ReadUInt64LittleEndian(h[16..]),
                BinaryPrimitives.ReadUInt64LittleEndian(h[32..]),
                BinaryPrimitives.ReadUInt64LittleEndian(h[40..]),
                BinaryPrimitives.ReadUInt64LittleEndian(h[48..]));
        }

        return new ElfFile
        {
            Type = type,
            Entry = BinaryPrimitives.ReadUInt64LittleEndian(header[24..]),
            ProgramHeaderOffset = phoff,
            ProgramHeaderCount = phnum,
            ProgramHeaders = headers,
        };
    }
}

/// <summary>One ELF program header.</summary>
internal readonly record struct ProgramHeader(uint Type, uint Flags, ulong Offset, ulong VirtualAddress, ulong FileSize, ulong MemorySize, ulong Align);
