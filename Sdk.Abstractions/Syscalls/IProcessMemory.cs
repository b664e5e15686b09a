using System.Runtime.InteropServices;

namespace AppKernel.Syscalls;

/// <summary>
/// Access to a program's memory with the program's own view of it: an unmapped or
/// inaccessible address fails with EFAULT (<see cref="ErrnoException"/>), as Linux's
/// copy_from_user/copy_to_user do.
/// </summary>
public interface IProcessMemory
{
    /// <summary>Copies program memory at <paramref name="address"/> into <paramref name="destination"/>.</summary>
    void Read(ulong address, Span<byte> destination);

    /// <summary>Copies <paramref name="source"/> into program memory at <paramref name="address"/>.</summary>
    void Write(ulong address, ReadOnlySpan<byte> source);

    /// <summary>Reads a NUL-terminated string of at most <paramref name="maxLength"/> bytes (ENAMETOOLONG beyond it).</summary>
    string ReadCString(ulong address, int maxLength = 4096);
}

/// <summary>Typed helpers over <see cref="IProcessMemory"/>.</summary>
public static class ProcessMemoryExtensions
{
    /// <summary>Reads one unmanaged value (a Linux struct in its C layout).</summary>
    public static T ReadValue<T>(this IProcessMemory memory, ulong address)
        where T : unmanaged
    {
        T value = default;
        memory.Read(address, MemoryMarshal.AsBytes(new Span<T>(ref value)));
        return value;
    }

    /// <summary>Writes one unmanaged value (a Linux struct in its C layout).</summary>
    public static void WriteValue<T>(this IProcessMemory memory, ulong address, in T value)
        where T : unmanaged
    {
        memory.Write(address, MemoryMarshal.AsBytes(new ReadOnlySpan<T>(in value)));
    }
}
