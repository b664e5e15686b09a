using System.Buffers;
using AppKernel.Platform;
using AppKernel.Sentry.Abi;
using AppKernel.Vfs;

namespace AppKernel.Sentry.Memory;

/// <summary>
/// A process's address space as Linux defines it: VMAs (what was asked for) and populated
/// areas (which memory-file pages back them). Every change is mirrored at once into the
/// platform's <see cref="IAddressSpace"/>; the platform never decides anything.
/// </summary>
/// <remarks>
/// Population policy: small mappings are populated when they are made, so a program touching
/// its memory causes no fault (a fault costs a full platform round trip); large ones are
/// populated in <see cref="FaultChunk"/> pieces on first touch. Anonymous memory is a sparse
/// range of the memory file, so populating costs address space, not host memory.
/// </remarks>
internal sealed unsafe partial class MemoryManager : IDisposable, IMappingSpace
{
    public const ulong PageSize = 4096;
    public const ulong PageMask = PageSize - 1;

    /// <summary>Linux's default vm.mmap_min_addr: no mapping below it.</summary>
    public const ulong MinMmapAddress = 0x10000;

    /// <summary>Mappings up to this size are populated when made.</summary>
    public const ulong EagerPopulateLimit = 16UL << 20;

    /// <summary>
    /// Writable private mappings of read-only files up to this size (a library's data segment) are
    /// copied when made: they are nearly always written, and with a file that cannot change, copying
    /// early is invisible, while a write fault per page costs a platform round trip each.
    /// </summary>
    public const ulong EagerCopyLimit = 256UL << 10;

    /// <summary>How much a fault populates at once in a large mapping.</summary>
    public const ulong FaultChunk = 2UL << 20;

    private readonly object gate = new();
    private readonly MemoryFile file;
    private readonly RangeMap<Vma> vmas;
    private readonly RangeMap<Pma> pmas = new((p, d) => p.SliceFrom(d));
    private ulong peakPopulated;
    private ulong peakMapped;
    private IAddressSpace addressSpace;
    private bool disposed;

    public MemoryManager(MemoryFile file, IAddressSpace addressSpace, ulong maxAddress)
    {
        this.file = file;
        this.addressSpace = addressSpace;
        vmas = new((v, d) => Attached(v.SliceFrom(d)));
        MaxAddress = maxAddress & ~PageMask;
        MmapBase = MaxAddress;
    }

    /// <summary>One past the highest program address.</summary>
    public ulong MaxAddress { get; }

    /// <summary>Where top-down mmap placement starts.</summary>
    public ulong MmapBase { get; set; }

    /// <summary>The start of the heap (brk area).</summary>
    public ulong BrkStart { get; private set; }

    /// <summary>The current program break.</summary>
    public ulong Brk { get; private set; }

    /// <summary>The limit of a growing stack (RLIMIT_STACK).</summary>
    public ulong StackLimit { get; set; } = 8UL << 20;

    /// <summary>Where argv and envp strings lie (for /proc/PID/cmdline and environ).</summary>
    public ulong ArgStart, ArgEnd, EnvStart, EnvEnd;

    /// <summary>The auxiliary vector the process started with (for /proc/PID/auxv).</summary>
    public ulong[] Auxv { get; set; } = [];

    public MemoryFile File => file;

    public IAddressSpace AddressSpace => addressSpace;

    public static ulong PageRoundUp(ulong value) => (value + PageMask) & ~PageMask;

    public static ulong PageRoundDown(ulong value) => value & ~PageMask;

    /// <summary>Sets the heap's start (after the executable's bss); brk starts empty.</summary>
    public void InitializeBrk(ulong start)
    {
        lock (gate)
        {
            BrkStart = PageRoundUp(start);
            Brk = BrkStart;
        }
    }

    /// <summary>Maps per <paramref name="request"/> and returns the address (ErrnoException on failure).</summary>
    public ulong Map(MmapRequest request)
    {
        lock (gate)
        {
            return MapLocked(request);
        }
    }

    private ulong MapLocked(MmapRequest r)
    {
        // A file sealed against writes refuses new writable shared mappings (EPERM), decided before
        // anything is replaced; the piece attached here is the new VMA's.
        bool attached = false;
        if (r.Mappable?.Mappings is { } mappings)
        {
            if (!mappings.TryAttach(this, r.Shared && (r.MaxAccess & MemoryAccess.Write) != 0))
            {
                throw ErrnoException.Of(Errno.EPERM);
            }

            attached = true;
        }

        try
        {
            return MapAttachedLocked(r, ref attached);
        }
        finally
        {
            if (attached)
            {
                r.Mappable!.Mappings!.Detach(this, r.Shared && (r.MaxAccess & MemoryAccess.Write) != 0);
            }
        }
    }

    private ulong MapAttachedLocked(MmapRequest r, ref bool attached)
    {
        ulong length = r.Length;
        ulong address;
        Replaced? replaced = null;
        if (r.Fixed)
        {
            address = r.Address;
            if (address + length > MaxAddress || address + length < address)
            {
                throw ErrnoException.Of(Errno.ENOMEM);
            }

            if (address < MinMmapAddress)
            {
                throw ErrnoException.Of(Errno.EPERM);
            }

            if (vmas.Overlaps(address, address + length))
            {
                if (r.NoReplace)
                {
                    throw ErrnoException.Of(Errno.EEXIST);
                }

                replaced = RemoveForReplace(address, length);
            }
        }
        else
        {
            address = FindFreeRange(r.Address, length);
        }

        try
        {
            InsertAndPopulate(r, address, length, ref attached);
        }
        finally
        {
            if (replaced is not null)
            {
                FinishReplace(address, address + length, replaced);
            }
        }

        return address;
    }

    private void InsertAndPopulate(MmapRequest r, ulong address, ulong length, ref bool attached)
    {
        var vma = new Vma
        {
            Access = r.Access,
            MaxAccess = r.MaxAccess,
            Shared = r.Shared,
            GrowsDown = r.GrowsDown,
            Mappable = r.Mappable,
            FileOffset = r.FileOffset,
            Owner = r.Owner,
            Name = r.Name,
            Device = r.Device,
            Inode = r.Inode,
            Accounted = !r.Shared && (r.Access & MemoryAccess.Write) != 0,
        };
        vma.Owner?.AddMappingReference();
        vmas.Insert(address, address + length, vma);
        attached = false; // the VMA holds the piece now
        MergeAround(address, address + length);
        if (r.Access != MemoryAccess.None && (r.Populate || length <= EagerPopulateLimit))
        {
            PopulateLocked(address, address + length);
        }
    }

    /// <summary>Shared file pages in [address, end) reach the file when they are unmapped, as msync would make them.</summary>
    private void ReportSharedPagesWritten(ulong address, ulong end)
    {
        foreach (var v in vmas.Overlapping(address, end))
        {
            if (v.Value is { Shared: true, Mappable: { } mappable })
            {
                ulong s = Math.Max(v.Start, address);
                ulong e = Math.Min(v.End, end);
                mappable.PagesWritten(v.Value.FileOffset + (long)(s - v.Start), (long)(e - s));
            }
        }
    }

    /// <summary>What a MAP_FIXED took out of the range, released once the new mapping is in place.</summary>
    private sealed record Replaced(List<RangeMap<Pma>.Entry> Pmas, List<RangeMap<Vma>.Entry> Vmas);

    /// <summary>
    /// The bookkeeping half of munmap for a MAP_FIXED: the range's mappings leave the maps, but the
    /// platform keeps the old pages mapped (and they keep their references) until the new mapping
    /// has replaced them in <see cref="FinishReplace"/>. Populating maps over the old entries, so a
    /// platform sees a replacement, which on KVM costs nothing where an entry stays the same
    /// (ld.so's read-only segments over its own reservation of the same file); one munmap and one mmap per
    /// call otherwise.
    /// </summary>
    private Replaced RemoveForReplace(ulong address, ulong length)
    {
        ulong end = address + length;
        ReportSharedPagesWritten(address, end);
        NotePeakLocked();
        return new Replaced(pmas.Remove(address, end), vmas.Remove(address, end));
    }

    /// <summary>Unmaps what the new mapping did not cover, then drops the old pages and mappings.</summary>
    private void FinishReplace(ulong start, ulong end, Replaced replaced)
    {
        if (replaced.Pmas.Count > 0)
        {
            ulong at = start;
            foreach (var p in pmas.Overlapping(start, end).ToArray())
            {
                if (p.Start > at)
                {
                    addressSpace.Unmap(at, p.Start - at);
                }

                at = Math.Max(at, p.End);
            }

            if (at < end)
            {
                addressSpace.Unmap(at, end - at);
            }
        }

        foreach (var p in replaced.Pmas)
        {
            file.DecRef(p.Value.FileOffset, (long)p.Length);
        }

        foreach (var v in replaced.Vmas)
        {
            Release(v.Value);
        }
    }

    /// <summary>munmap: removes every mapping in the range (nothing mapped is fine).</summary>
    public void Unmap(ulong address, ulong length)
    {
        lock (gate)
        {
            UnmapLocked(address, length);
        }
    }

    private void UnmapLocked(ulong address, ulong length)
    {
        ulong end = address + length;
        ReportSharedPagesWritten(address, end);

        bool any = vmas.Overlaps(address, end);
        NotePeakLocked();
        var removedPmas = pmas.Remove(address, end);
        if (any || removedPmas.Count > 0)
        {
            // Unmap in the platform before the pages can be reused.
            addressSpace.Unmap(address, length);
        }

        foreach (var p in removedPmas)
        {
            file.DecRef(p.Value.FileOffset, (long)p.Length);
        }

        foreach (var v in vmas.Remove(address, end))
        {
            Release(v.Value);
        }
    }

    /// <summary>mprotect over [address, address + length), which must be fully mapped (ENOMEM otherwise).</summary>
    public void Protect(ulong address, ulong length, MemoryAccess access, bool growsDown)
    {
        lock (gate)
        {
            ulong end = address + length;
            if (growsDown)
            {
                if (!vmas.TryFind(address, out var first, out _) || !first.Value.GrowsDown)
                {
                    throw ErrnoException.Of(Errno.EINVAL);
                }

                address = first.Start;
            }

            if (!vmas.Covers(address, end))
            {
                throw ErrnoException.Of(Errno.ENOMEM);
            }

            foreach (var entry in vmas.Overlapping(address, end))
            {
                if ((access & ~entry.Value.MaxAccess) != 0)
                {
                    throw ErrnoException.Of(Errno.EACCES);
                }
            }

            var (firstIndex, lastIndex) = vmas.Isolate(address, end);
            for (int i = firstIndex; i < lastIndex; i++)
            {
                var entry = vmas[i];
                if (entry.Value.Access == access)
                {
                    continue;
                }

                entry.Value.Access = access;
                entry.Value.Accounted |= !entry.Value.Shared && (access & MemoryAccess.Write) != 0;
                foreach (var p in pmas.Overlapping(entry.Start, entry.End))
                {
                    ulong s = Math.Max(p.Start, entry.Start);
                    ulong e = Math.Min(p.End, entry.End);
                    addressSpace.Protect(s, e - s, Effective(entry.Value, p.Value));
                }
            }

            MergeAround(address, end);
            if (access != MemoryAccess.None && length <= EagerPopulateLimit)
            {
                PopulateLocked(address, end);
            }
        }
    }

    /// <summary>brk: moves the break; returns the new break, or the old one when the move is refused (Linux never fails brk).</summary>
    public ulong SetBrk(ulong requested)
    {
        lock (gate)
        {
            if (requested < BrkStart)
            {
                return Brk;
            }

            ulong oldEnd = PageRoundUp(Brk);
            ulong newEnd = PageRoundUp(requested);
            if (newEnd > oldEnd)
            {
                if (newEnd > MaxAddress || vmas.Overlaps(oldEnd, newEnd))
                {
                    return Brk;
                }

                try
                {
                    MapLocked(new MmapRequest
                    {
                        Address = oldEnd,
                        Length = newEnd - oldEnd,
                        Access = MemoryAccess.ReadWrite,
                        Fixed = true,
                        Name = "[heap]",
                    });
                }
                catch (ErrnoException)
                {
                    return Brk;
                }
            }
            else if (newEnd < oldEnd)
            {
                UnmapLocked(newEnd, oldEnd - newEnd);
            }

            Brk = requested;
            return Brk;
        }
    }

    /// <summary>mremap with Linux's rules; returns the new address.</summary>
    public ulong Remap(ulong oldAddress, ulong oldLength, ulong newLength, bool mayMove, bool fixedTarget, ulong newAddress)
    {
        lock (gate)
        {
            if (!vmas.TryFind(oldAddress, out var entry, out int index) || oldAddress + oldLength > entry.End)
            {
                throw ErrnoException.Of(Errno.EFAULT);
            }

            // old_size 0 duplicates a shared mapping on Linux (EINVAL for private ones); not supported here.
            if (oldLength == 0)
            {
                throw ErrnoException.Of(Errno.EINVAL);
            }

            if (fixedTarget)
            {
                if (newAddress + newLength > MaxAddress || newAddress < MinMmapAddress)
                {
                    throw ErrnoException.Of(Errno.EINVAL);
                }

                if (newAddress < oldAddress + oldLength && oldAddress < newAddress + newLength)
                {
                    throw ErrnoException.Of(Errno.EINVAL);
                }

                UnmapLocked(newAddress, newLength);
                if (newLength < oldLength)
                {
                    UnmapLocked(oldAddress + newLength, oldLength - newLength);
                    oldLength = newLength;
                }

                MoveLocked(oldAddress, oldLength, newAddress, newLength);
                return newAddress;
            }

            if (newLength <= oldLength)
            {
                if (newLength < oldLength)
                {
                    UnmapLocked(oldAddress + newLength, oldLength - newLength);
                }

                return oldAddress;
            }

            ulong growEnd = oldAddress + newLength;
            if (oldAddress + oldLength == entry.End && growEnd <= MaxAddress && growEnd > oldAddress &&
                !vmas.Overlaps(entry.End, growEnd))
            {
                ulong oldEnd = entry.End;
                vmas.SetBounds(index, entry.Start, growEnd);
                if (newLength - oldLength <= EagerPopulateLimit && entry.Value.Access != MemoryAccess.None)
                {
                    PopulateLocked(oldEnd, growEnd);
                }

                return oldAddress;
            }

            if (!mayMove)
            {
                throw ErrnoException.Of(Errno.ENOMEM);
            }

            ulong target = FindFreeRange(0, newLength);
            MoveLocked(oldAddress, oldLength, target, newLength);
            return target;
        }
    }

    private void MoveLocked(ulong source, ulong sourceLength, ulong target, ulong targetLength)
    {
        // Moving is re-pointing: the same memory-file pages appear at the new address, no copy.
        var movedVmas = vmas.Remove(source, source + sourceLength);
        NotePeakLocked();
        var movedPmas = pmas.Remove(source, source + sourceLength);
        addressSpace.Unmap(source, sourceLength);
        long shift = (long)(target - source);
        for (int i = 0; i < movedVmas.Count; i++)
        {
            var v = movedVmas[i];
            ulong end = (ulong)((long)v.End + shift);
            if (i == movedVmas.Count - 1)
            {
                end = target + targetLength;
            }

            vmas.Insert((ulong)((long)v.Start + shift), end, v.Value);
        }

        foreach (var p in movedPmas)
        {
            ulong start = (ulong)((long)p.Start + shift);
            ulong end = start + p.Length;
            pmas.Insert(start, end, p.Value);

            // A pma may span VMAs of different access: map each piece with its own.
            foreach (var piece in vmas.Overlapping(start, end))
            {
                ulong s = Math.Max(piece.Start, start);
                ulong e = Math.Min(piece.End, end);
                addressSpace.Map(s, e - s, p.Value.FileOffset + (long)(s - start), Effective(piece.Value, p.Value));
            }
        }

        if (targetLength > sourceLength && targetLength - sourceLength <= EagerPopulateLimit)
        {
            PopulateLocked(target + sourceLength, target + targetLength);
        }
    }

    /// <summary>
    /// The first half of madvise(MADV_REMOVE): shared anonymous memory in the range is dropped here; for
    /// each shared file mapping, the file range behind it is returned, with a mapping reference on
    /// its owner, for the caller to punch (FALLOC_FL_PUNCH_HOLE) once this lock is released, as
    /// Linux's madvise_remove does through vfs_fallocate (the file then drops its pages from every
    /// mapping). EINVAL for private anonymous memory, EACCES for a file mapping that is not shared and
    /// writable-capable (VM_SHARED|VM_MAYWRITE); <paramref name="fullyMapped"/> is false when part of
    /// the range is unmapped (ENOMEM after the rest is done).
    /// </summary>
    public List<(IMappingOwner Owner, long Offset, long Length)> PrepareRemove(ulong address, ulong length, out bool fullyMapped)
    {
        lock (gate)
        {
            ulong end = address + length;
            fullyMapped = vmas.Covers(address, end);
            var holes = new List<(IMappingOwner, long, long)>();
            try
            {
                foreach (var v in vmas.Overlapping(address, end).ToArray())
                {
                    ulong s = Math.Max(v.Start, address);
                    ulong e = Math.Min(v.End, end);
                    var vma = v.Value;
                    if (vma.Mappable is null)
                    {
                        if (!vma.Shared)
                        {
                            throw ErrnoException.Of(Errno.EINVAL);
                        }

                        DropPopulated(s, e);
                        if (e - s <= EagerPopulateLimit && vma.Access != MemoryAccess.None)
                        {
                            PopulateLocked(s, e);
                        }

                        continue;
                    }

                    if (!IsWritableShared(vma) || vma.Owner is null)
                    {
                        throw ErrnoException.Of(Errno.EACCES);
                    }

                    vma.Owner.AddMappingReference();
                    holes.Add((vma.Owner, vma.FileOffset + (long)(s - v.Start), (long)(e - s)));
                }
            }
            catch
            {
                foreach (var (owner, _, _) in holes)
                {
                    owner.DropMappingReference();
                }

                throw;
            }

            return holes;
        }
    }

    /// <summary>madvise for the advice values that change memory (DONTNEED, FREE, POPULATE_*; REMOVE is <see cref="PrepareRemove"/>); others are accepted.</summary>
    public void Advise(ulong address, ulong length, int advice)
    {
        lock (gate)
        {
            ulong end = address + length;
            bool fullyMapped = vmas.Covers(address, end);
            switch (advice)
            {
                case LinuxConstants.MADV_DONTNEED or LinuxConstants.MADV_FREE:
                    foreach (var v in vmas.Overlapping(address, end).ToArray())
                    {
                        ulong s = Math.Max(v.Start, address);
                        ulong e = Math.Min(v.End, end);
                        DropPopulated(s, e);

                        // DONTNEED gives the memory back: the resident size drops, as Linux's, and
                        // the next touch faults fresh pages in. MADV_FREE's pages stay resident on
                        // Linux until memory runs short, so they come back at once.
                        if (advice == LinuxConstants.MADV_FREE && e - s <= EagerPopulateLimit && v.Value.Access != MemoryAccess.None)
                        {
                            PopulateLocked(s, e);
                        }
                    }

                    break;
                case LinuxConstants.MADV_POPULATE_READ or LinuxConstants.MADV_POPULATE_WRITE or LinuxConstants.MADV_WILLNEED:
                    if (!fullyMapped)
                    {
                        throw ErrnoException.Of(Errno.ENOMEM);
                    }

                    PopulateLocked(address, end);
                    break;
                case LinuxConstants.MADV_DONTFORK or LinuxConstants.MADV_DOFORK:
                    if (!fullyMapped)
                    {
                        throw ErrnoException.Of(Errno.ENOMEM);
                    }

                    var (first, last) = vmas.Isolate(address, end);
                    for (int i = first; i < last; i++)
                    {
                        vmas[i].Value.DontFork = advice == LinuxConstants.MADV_DONTFORK;
                    }

                    break;
            }

            if (!fullyMapped)
            {
                throw ErrnoException.Of(Errno.ENOMEM);
            }
        }
    }

    /// <summary>msync: ENOMEM when part of the range is unmapped; shared file pages are reported written.</summary>
    public void Sync(ulong address, ulong length)
    {
        lock (gate)
        {
            ulong end = address + length;
            if (!vmas.Covers(address, end))
            {
                throw ErrnoException.Of(Errno.ENOMEM);
            }

            foreach (var v in vmas.Overlapping(address, end))
            {
                if (v.Value is { Shared: true, Mappable: { } mappable })
                {
                    ulong s = Math.Max(v.Start, address);
                    ulong e = Math.Min(v.End, end);
                    mappable.PagesWritten(v.Value.FileOffset + (long)(s - v.Start), (long)(e - s));
                }
            }
        }
    }

    /// <summary>mincore: one byte per page, 1 when the page is populated.</summary>
    public void Residency(ulong address, ulong length, Span<byte> vector)
    {
        lock (gate)
        {
            if (!vmas.Covers(address, address + length))
            {
                throw ErrnoException.Of(Errno.ENOMEM);
            }

            for (int i = 0; i < vector.Length; i++)
            {
                ulong page = address + (ulong)i * PageSize;
                vector[i] = pmas.TryFind(page, out _, out _) ? (byte)1 : (byte)0;
            }
        }
    }

    /// <summary>
    /// Resolves a fault: populates, copies on write, or grows a stack. False when the access is
    /// invalid; <paramref name="signalCode"/> is then SEGV_MAPERR or SEGV_ACCERR.
    /// </summary>
    public bool HandleFault(ulong address, MemoryAccess access, out int signalCode) =>
        HandleFault(address, access, out _, out signalCode);

    /// <summary>
    /// Resolves a page fault by populating or breaking COW. When it cannot, <paramref name="signal"/>
    /// and <paramref name="signalCode"/> say what Linux sends: SIGSEGV (MAPERR, ACCERR), or SIGBUS
    /// (BUS_ADRERR) for a page of a file mapping wholly past the end of the file.
    /// </summary>
    public bool HandleFault(ulong address, MemoryAccess access, out int signal, out int signalCode)
    {
        signal = Signals.SIGSEGV;
        lock (gate)
        {
            ulong page = PageRoundDown(address);
            signalCode = Signals.SEGV_MAPERR;
            if (!vmas.TryFind(page, out var entry, out _))
            {
                return TryGrowStack(page);
            }

            var vma = entry.Value;
            signalCode = Signals.SEGV_ACCERR;
            if (vma.Access == MemoryAccess.None || (access & ~vma.Access & (MemoryAccess.Write | MemoryAccess.Execute)) != 0)
            {
                return false;
            }

            if (!pmas.TryFind(page, out var pma, out _))
            {
                if (vma.Mappable is { } mappable && page >= EndOfFile(entry, mappable))
                {
                    signal = Signals.SIGBUS;
                    signalCode = Signals.BUS_ADRERR;
                    return false;
                }

                ulong start = Math.Max(entry.Start, page & ~(FaultChunk - 1));
                ulong end = Math.Min(entry.End, start + FaultChunk);
                PopulateLocked(start, end);
                return true;
            }

            if (pma.Value.Cow && (vma.Access & MemoryAccess.Write) != 0 && access is MemoryAccess.Write or MemoryAccess.None)
            {
                BreakCow(page, vma);
                return true;
            }

            // The page is populated and its mapping allows what the platform says was tried: the
            // platform's view of it is stale. Linux returns from such a spurious fault and lets the
            // access retry; here the page is also handed to the platform afresh (unmapped, then
            // mapped, so even an entry that looks unchanged is rewritten and flushed). The task's
            // repeated-fault guard turns a fault that keeps coming back into SIGSEGV.
            var effective = Effective(vma, pma.Value);
            if (access != MemoryAccess.None && (access & ~effective) == 0)
            {
                SpuriousFaults++;
                addressSpace.Unmap(page, PageSize);
                addressSpace.Map(page, PageSize, pma.Value.FileOffset + (long)(page - pma.Start), effective);
                return true;
            }

            return false;
        }
    }

    /// <summary>Faults on pages whose mapping already allowed the access (see <see cref="HandleFault(ulong, MemoryAccess, out int, out int)"/>).</summary>
    public long SpuriousFaults { get; private set; }

    /// <summary>The program address where a file mapping's pages stop being backed by the file.</summary>
    private static ulong EndOfFile(RangeMap<Vma>.Entry owner, IMappable mappable)
    {
        long size = mappable.Size;
        if (size == long.MaxValue)
        {
            return ulong.MaxValue;
        }

        long fileEnd = (long)PageRoundUp((ulong)Math.Max(size, 0));
        long past = fileEnd - owner.Value.FileOffset;
        if (past <= 0)
        {
            return owner.Start;
        }

        ulong end = owner.Start + (ulong)past;
        return end < owner.Start ? ulong.MaxValue : end;
    }

    private bool TryGrowStack(ulong page)
    {
        int next = vmas.FirstEndingAbove(page);
        if (next >= vmas.Count || !vmas[next].Value.GrowsDown)
        {
            return false;
        }

        var stack = vmas[next];
        ulong lowest = stack.End > StackLimit ? stack.End - StackLimit : 0;
        if (page < lowest)
        {
            return false;
        }

        // Grow a little more than needed: every fault is a platform round trip.
        ulong floor = next > 0 ? vmas[next - 1].End : MinMmapAddress;
        ulong start = Math.Max(Math.Max(page & ~0xFFFFUL, lowest), floor);
        if (start > page)
        {
            return false;
        }

        vmas.SetBounds(next, start, stack.End);
        PopulateLocked(start, stack.Start);
        return true;
    }

    /// <summary>Populates every mapped, accessible page in [start, end) that is not populated yet.</summary>
    private void PopulateLocked(ulong start, ulong end)
    {
        foreach (var v in vmas.Overlapping(start, end).ToArray())
        {
            if (v.Value.Access == MemoryAccess.None)
            {
                continue;
            }

            ulong s = Math.Max(start, v.Start);
            ulong e = Math.Min(end, v.End);
            ulong at = s;
            foreach (var p in pmas.Overlapping(s, e).ToArray())
            {
                if (p.Start > at)
                {
                    FillGap(v, at, p.Start);
                }

                at = Math.Max(at, p.End);
            }

            if (at < e)
            {
                FillGap(v, at, e);
            }
        }
    }

    private void FillGap(RangeMap<Vma>.Entry owner, ulong start, ulong end)
    {
        var vma = owner.Value;
        if (vma.Mappable is { } sized)
        {
            // Pages wholly past the end of the file stay unmapped: touching them is SIGBUS.
            end = Math.Min(end, EndOfFile(owner, sized));
            if (end <= start)
            {
                return;
            }
        }

        ulong length = end - start;
        if (vma.Mappable is null)
        {
            long offset = file.Allocate((long)length);
            pmas.Insert(start, end, new Pma(offset, Cow: false, Anonymous: true));
            addressSpace.Map(start, length, offset, vma.Access);
            return;
        }

        int count = (int)(length / PageSize);
        long[] pages = ArrayPool<long>.Shared.Rent(count);
        try
        {
            long fileOffset = vma.FileOffset + (long)(start - owner.Start);
            vma.Mappable.GetPages(fileOffset, pages.AsSpan(0, count));
            if (!vma.Shared && (vma.Access & MemoryAccess.Write) != 0 && vma.Mappable.IsReadOnly && length <= EagerCopyLimit)
            {
                long copy = file.Allocate((long)length);
                for (int i = 0; i < count; i++)
                {
                    Buffer.MemoryCopy(file.Pointer(pages[i]), file.Pointer(copy + i * (long)PageSize), PageSize, PageSize);
                    file.DecRef(pages[i], (long)PageSize);
                }

                pmas.Insert(start, end, new Pma(copy, Cow: false, Anonymous: true));
                addressSpace.Map(start, length, copy, vma.Access);
                return;
            }

            // Otherwise private pages stay shared with the file until written: until then the
            // mapping sees the file's changes, as Linux's does.
            bool cow = !vma.Shared;
            int runStart = 0;
            for (int i = 1; i <= count; i++)
            {
                if (i < count && pages[i] == pages[i - 1] + (long)PageSize)
                {
                    continue;
                }

                ulong runAddress = start + (ulong)runStart * PageSize;
                ulong runLength = (ulong)(i - runStart) * PageSize;
                var pma = new Pma(pages[runStart], cow, Anonymous: false);
                pmas.Insert(runAddress, runAddress + runLength, pma);
                addressSpace.Map(runAddress, runLength, pma.FileOffset, Effective(vma, pma));
                runStart = i;
            }
        }
        finally
        {
            ArrayPool<long>.Shared.Return(pages);
        }
    }

    private void BreakCow(ulong page, Vma vma)
    {
        var (index, _) = pmas.Isolate(page, page + PageSize);
        var pma = pmas[index].Value;
        long offset = pma.FileOffset;
        if (file.RefCount(offset) != 1)
        {
            long copy = file.Allocate((long)PageSize);
            Buffer.MemoryCopy(file.Pointer(offset), file.Pointer(copy), PageSize, PageSize);
            file.DecRef(offset, (long)PageSize);
            offset = copy;
        }

        var owned = new Pma(offset, Cow: false, Anonymous: true);
        pmas.SetValue(index, owned);
        addressSpace.Map(page, PageSize, offset, vma.Access);
    }

    private void DropPopulated(ulong start, ulong end)
    {
        NotePeakLocked();
        var removed = pmas.Remove(start, end);
        if (removed.Count == 0)
        {
            return;
        }

        addressSpace.Unmap(start, end - start);
        foreach (var p in removed)
        {
            file.DecRef(p.Value.FileOffset, (long)p.Length);
        }
    }

    /// <summary>A VMA piece that is new to the map (a split, a fork's copy): it maps its file once more.</summary>
    private Vma Attached(Vma vma)
    {
        vma.Mappable?.Mappings?.Attach(this, IsWritableShared(vma));
        return vma;
    }

    /// <summary>A VMA piece leaves the map: its file reference and its place among the file's mappings go.</summary>
    private void Release(Vma vma)
    {
        vma.Owner?.DropMappingReference();
        vma.Mappable?.Mappings?.Detach(this, IsWritableShared(vma));
    }

    /// <summary>Linux's VM_SHARED with VM_MAYWRITE: what F_SEAL_WRITE waits out (EBUSY).</summary>
    private static bool IsWritableShared(Vma vma) => vma.Shared && (vma.MaxAccess & MemoryAccess.Write) != 0;

    /// <inheritdoc/>
    public void DropFilePages(IMappable mappable, long fileOffset, long length, bool privateCopiesToo)
    {
        lock (gate)
        {
            if (disposed)
            {
                return;
            }

            long fileEnd = fileOffset > long.MaxValue - length ? long.MaxValue : fileOffset + length;
            List<(ulong Start, ulong End)>? ranges = null;
            foreach (var v in vmas.All)
            {
                var vma = v.Value;
                if (!ReferenceEquals(vma.Mappable, mappable))
                {
                    continue;
                }

                long vmaEnd = vma.FileOffset + (long)v.Length;
                long s = Math.Max(vma.FileOffset, fileOffset);
                long e = Math.Min(vmaEnd, fileEnd);
                if (s >= e)
                {
                    continue;
                }

                ulong start = v.Start + (ulong)(s - vma.FileOffset);
                ulong end = start + (ulong)(e - s);
                foreach (var p in pmas.Overlapping(start, end))
                {
                    if (p.Value.Anonymous && !vma.Shared && !privateCopiesToo)
                    {
                        continue;
                    }

                    ulong from = Math.Max(p.Start, start), to = Math.Min(p.End, end);
                    ranges ??= [];
                    if (ranges.Count > 0 && ranges[^1].End == from)
                    {
                        ranges[^1] = (ranges[^1].Start, to);
                    }
                    else
                    {
                        ranges.Add((from, to));
                    }
                }
            }

            if (ranges is null)
            {
                return;
            }

            foreach (var (start, end) in ranges)
            {
                DropPopulated(start, end);
            }
        }
    }

    private static MemoryAccess Effective(Vma vma, Pma pma) =>
        pma.Cow ? vma.Access & ~MemoryAccess.Write : vma.Access;

    private void MergeAround(ulong start, ulong end)
    {
        vmas.Coalesce(start > PageSize ? start - PageSize : 0, end, (a, b) =>
        {
            if (!a.Value.Continues(b.Value, a.Length))
            {
                return false;
            }

            Release(b.Value);
            return true;
        });
    }

    /// <summary>Finds a free range: the hint if it fits, else top-down from <see cref="MmapBase"/>, else bottom-up above it.</summary>
    private ulong FindFreeRange(ulong hint, ulong length)
    {
        if (length > MaxAddress - MinMmapAddress)
        {
            throw ErrnoException.Of(Errno.ENOMEM);
        }

        if (hint != 0)
        {
            hint = PageRoundDown(hint);
            if (hint >= MinMmapAddress && hint <= MaxAddress - length && !vmas.Overlaps(hint, hint + length))
            {
                return hint;
            }
        }

        ulong ceiling = Math.Min(MmapBase, MaxAddress);
        int i = vmas.FirstEndingAbove(ceiling);
        if (i < vmas.Count && vmas[i].Start < ceiling)
        {
            ceiling = vmas[i].Start;
        }

        for (int j = i - 1; ; j--)
        {
            ulong floor = j >= 0 ? vmas[j].End : MinMmapAddress;
            if (ceiling >= floor && ceiling - floor >= length && ceiling - length >= MinMmapAddress)
            {
                return ceiling - length;
            }

            if (j < 0)
            {
                break;
            }

            ceiling = vmas[j].Start;
        }

        // Nothing below the base: look above it.
        ulong at = Math.Min(MmapBase, MaxAddress);
        for (int j = vmas.FirstEndingAbove(at); ; j++)
        {
            ulong limit = j < vmas.Count ? vmas[j].Start : MaxAddress;
            if (limit > at && limit - at >= length)
            {
                return at;
            }

            if (j >= vmas.Count)
            {
                break;
            }

            at = Math.Max(at, vmas[j].End);
        }

        throw ErrnoException.Of(Errno.ENOMEM);
    }

    /// <summary>A snapshot of the VMAs, for /proc/PID/maps.</summary>
    public List<(ulong Start, ulong End, Vma Vma)> SnapshotVmas()
    {
        lock (gate)
        {
            var list = new List<(ulong, ulong, Vma)>(vmas.Count);
            foreach (var v in vmas.All)
            {
                list.Add((v.Start, v.End, v.Value));
            }

            return list;
        }
    }

    /// <summary>Bytes of populated program memory (resident, as /proc reports VmRSS).</summary>
    public ulong PopulatedBytes
    {
        get
        {
            lock (gate)
            {
                return PopulatedBytesLocked();
            }
        }
    }

    /// <summary>
    /// The most <see cref="PopulatedBytes"/> this address space has held (VmHWM, ru_maxrss): noted,
    /// as Linux does, just before anything gives populated memory back, so it is exact however
    /// briefly the peak lasted.
    /// </summary>
    public ulong PeakPopulatedBytes
    {
        get
        {
            lock (gate)
            {
                return Math.Max(peakPopulated, PopulatedBytesLocked());
            }
        }
    }

    private ulong PopulatedBytesLocked() => pmas.TotalLength;

    /// <summary>
    /// Called before populated or mapped memory is released: the high-water marks keep the sizes
    /// they had (O(1): the range maps keep their totals).
    /// </summary>
    private void NotePeakLocked()
    {
        peakPopulated = Math.Max(peakPopulated, pmas.TotalLength);
        peakMapped = Math.Max(peakMapped, vmas.TotalLength);
    }

    /// <summary>The most <see cref="MappedBytes"/> this address space has held (VmPeak).</summary>
    public ulong PeakMappedBytes
    {
        get
        {
            lock (gate)
            {
                return Math.Max(peakMapped, vmas.TotalLength);
            }
        }
    }

    /// <summary>Total mapped bytes (VmSize).</summary>
    public ulong MappedBytes
    {
        get
        {
            lock (gate)
            {
                return vmas.TotalLength;
            }
        }
    }

    public void Dispose()
    {
        lock (gate)
        {
            if (disposed)
            {
                return;
            }

            disposed = true;
            addressSpace.Dispose();
            foreach (var p in pmas.All)
            {
                file.DecRef(p.Value.FileOffset, (long)p.Length);
            }

            foreach (var v in vmas.All)
            {
                Release(v.Value);
            }

            pmas.Clear();
            vmas.Clear();
        }
    }
}
