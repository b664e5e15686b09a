using AppKernel.Platform;
using AppKernel.Vfs;

namespace AppKernel.Sentry.Memory;

/// <summary>
/// A virtual memory area: what the program asked for at some addresses (access, private or
/// shared, the file and offset behind it). Its bounds live in the memory manager's range map.
/// </summary>
internal sealed class Vma
{
    /// <summary>Current access (PROT_*).</summary>
    public MemoryAccess Access;

    /// <summary>Access mprotect may grant (a shared mapping of a read-only file cannot become writable).</summary>
    public MemoryAccess MaxAccess = MemoryAccess.All;

    /// <summary>MAP_SHARED: writes reach the file (or other processes); fork shares the pages.</summary>
    public bool Shared;

    /// <summary>MAP_GROWSDOWN: a stack that extends on faults just below it.</summary>
    public bool GrowsDown;

    /// <summary>The file behind the mapping, or null for anonymous memory.</summary>
    public IMappable? Mappable;

    /// <summary>The file offset of the VMA's start.</summary>
    public long FileOffset;

    /// <summary>Keeps the mapped file open while mapped; released on unmap.</summary>
    public IMappingOwner? Owner;

    /// <summary>What /proc/PID/maps shows in the path column: a path, [heap], [stack], or nothing.</summary>
    public string? Name;

    /// <summary>Device and inode shown in /proc/PID/maps.</summary>
    public ulong Device, Inode;

    /// <summary>
    /// Private memory that has been writable (Linux's VM_ACCOUNT, "ac" in smaps): set when mapped
    /// or made writable, kept when write access is taken away.
    /// </summary>
    public bool Accounted;

    /// <summary>madvise(MADV_DONTFORK): the child of a fork does not get this range.</summary>
    public bool DontFork;

    public Vma Clone()
    {
        var copy = (Vma)MemberwiseClone();
        copy.Owner?.AddMappingReference();
        return copy;
    }

    /// <summary>The part of this VMA that starts <paramref name="delta"/> bytes later.</summary>
    public Vma SliceFrom(ulong delta)
    {
        var copy = Clone();
        if (Mappable is not null)
        {
            copy.FileOffset += (long)delta;
        }

        return copy;
    }

    /// <summary>True when <paramref name="next"/>, starting where this ends, continues it (same kind, contiguous file offsets).</summary>
    public bool Continues(Vma next, ulong length) =>
        Access == next.Access && MaxAccess == next.MaxAccess && Shared == next.Shared && GrowsDown == next.GrowsDown &&
        ReferenceEquals(Mappable, next.Mappable) && Name == next.Name && DontFork == next.DontFork && Accounted == next.Accounted &&
        ReferenceEquals(Owner, next.Owner) && (Mappable is null || FileOffset + (long)length == next.FileOffset);
}

/// <summary>What holds a mapped file open: one reference per VMA piece that maps it.</summary>
internal interface IMappingOwner
{
    void AddMappingReference();

    void DropMappingReference();
}
