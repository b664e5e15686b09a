using System.Buffers.Binary;

namespace AppKernel.Platform.Ptrace.Stub;

/// <summary>
/// Writes a minimal static x86-64 ELF executable: one read+execute PT_LOAD segment and a
/// PT_GNU_STACK header that keeps the exec stack non-executable. No sections, no interpreter.
/// </summary>
internal static class ElfImage
{
    private const int HeaderSize = 64, ProgramHeaderSize = 56, PageSize = 0x1000;
    private const uint PtLoad = 1, PtGnuStack = 0x6474e551;
    private const uint FlagExecute = 1, FlagWrite = 2, FlagRead = 4;

    /// <summary>Builds the file: headers in the first page, <paramref name="code"/> from file offset 0x1000 mapped at <paramref name="address"/>.</summary>
    public static byte[] Build(byte[] code, ulong address, ulong entry)
    {
        var file = new byte[PageSize + code.Length];
        var h = file.AsSpan();

        // e_ident: magic, 64-bit, little-endian, version 1, System V ABI.
        h[0] = 0x7f;
        h[1] = (byte)'E';
        h[2] = (byte)'L';
        h[3] = (byte)'F';
        h[4] = 2;
        h[5] = 1;
        h[6] = 1;
        BinaryPrimitives.WriteUInt16LittleEndian(h[16..], 2);            // e_type: ET_EXEC
        BinaryPrimitives.WriteUInt16LittleEndian(h[18..], 62);           // e_machine: EM_X86_64
        BinaryPrimitives.WriteUInt32LittleEndian(h[20..], 1);            // e_version
        BinaryPrimitives.WriteUInt64LittleEndian(h[24..], entry);        // e_entry
        BinaryPrimitives.WriteUInt64LittleEndian(h[32..], HeaderSize);   // e_phoff
        BinaryPrimitives.WriteUInt16LittleEndian(h[52..], HeaderSize);   // e_ehsize
        BinaryPrimitives.WriteUInt16LittleEndian(h[54..], ProgramHeaderSize);
        BinaryPrimitives.WriteUInt16LittleEndian(h[56..], 2);            // e_phnum
        BinaryPrimitives.WriteUInt16LittleEndian(h[58..], 64);           // e_shentsize (no sections)

        // The code segment; memsz == filesz, so the kernel has no bss to clear in a read-only page.
        WriteProgramHeader(h[HeaderSize..], PtLoad, FlagRead | FlagExecute, PageSize, address, (ulong)code.Length, PageSize);

        // A non-executable stack.
        WriteProgramHeader(h[(HeaderSize + ProgramHeaderSize)..], PtGnuStack, FlagRead | FlagWrite, 0, 0, 0, 16);

        code.CopyTo(file, PageSize);
        return file;
    }

    private static void WriteProgramHeader(Span<byte> p, uint type, uint flags, ulong offset, ulong address, ulong size, ulong align)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(p, type);
        BinaryPrimitives.WriteUInt32LittleEndian(p[4..], flags);
        BinaryPrimitives.WriteUInt64LittleEndian(p[8..], offset);
        BinaryPrimitives.WriteUInt64LittleEndian(p[16..], address);      // p_vaddr
        BinaryPrimitives.WriteUInt64LittleEndian(p[24..], address);      // p_paddr
        BinaryPrimitives.WriteUInt64LittleEndian(p[32..], size);         // p_filesz
        BinaryPrimitives.WriteUInt64LittleEndian(p[40..], size);         // p_memsz
        BinaryPrimitives.WriteUInt64LittleEndian(p[48..], align);
    }
}
