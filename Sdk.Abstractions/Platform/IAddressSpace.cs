namespace AppKernel.Platform;

/// <summary>
/// A program address space as the platform holds it: a mirror of the memory manager's
/// decisions, made of ranges of the memory file mapped at program addresses.
/// Every method is called with page-aligned addresses and lengths.
/// </summary>
public interface IAddressSpace : IDisposable
{
    /// <summary>
    /// Maps <paramref name="length"/> bytes of the memory file starting at <paramref name="fileOffset"/>
    /// at <paramref name="address"/>, replacing whatever was mapped there.
    /// </summary>
    void Map(ulong address, ulong length, long fileOffset, MemoryAccess access);

    /// <summary>Removes any mapping in the range; unmapped parts are ignored.</summary>
    void Unmap(ulong address, ulong length);

    /// <summary>Changes the access of an already mapped range.</summary>
    void Protect(ulong address, ulong length, MemoryAccess access);
}
