using AppKernel.Platform;
using AppKernel.Vfs;

namespace AppKernel.Sentry.Memory;

/// <summary>An mmap after argument checks: what to map and where.</summary>
internal sealed class MmapRequest
{
    public ulong Address;
    public ulong Length;
    public MemoryAccess Access;
    public bool Fixed;
    public bool NoReplace;
    public bool Shared;
    public bool GrowsDown;
    public bool Populate;
    public IMappable? Mappable;
    public long FileOffset;
    public MemoryAccess MaxAccess = MemoryAccess.All;
    public IMappingOwner? Owner;
    public string? Name;
    public ulong Device;
    public ulong Inode;
}
