using AppKernel.Platform;

namespace AppKernel.Sentry.Tests.Memory;

/// <summary>An address space that only remembers what is mapped where, page by page, with which access.</summary>
internal sealed class RecordingAddressSpace : IAddressSpace
{
    public Dictionary<ulong, (long Offset, MemoryAccess Access)> Pages { get; } = new();

    public int Calls { get; private set; }

    public void Map(ulong address, ulong length, long fileOffset, MemoryAccess access)
    {
        Calls++;
        for (ulong p = 0; p < length; p += 4096)
        {
            Pages[address + p] = (fileOffset + (long)p, access);
        }
    }

    public void Unmap(ulong address, ulong length)
    {
        Calls++;
        foreach (var page in Pages.Keys.Where(k => k >= address && k < address + length).ToList())
        {
            Pages.Remove(page);
        }
    }

    public void Protect(ulong address, ulong length, MemoryAccess access)
    {
        Calls++;
        for (ulong p = address; p < address + length; p += 4096)
        {
            if (Pages.TryGetValue(p, out var entry))
            {
                Pages[p] = entry with { Access = access };
            }
        }
    }

    public void Dispose()
    {
    }
}
