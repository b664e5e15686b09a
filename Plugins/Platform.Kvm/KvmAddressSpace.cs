using static AppKernel.Platform.Kvm.GuestLayout;

namespace AppKernel.Platform.Kvm;

/// <summary>
/// A program address space on KVM: a four-level page-table tree in the platform region whose user half
/// maps memory-file offsets (guest-physical = file offset) with the mapping's R/W/X bits, and whose
/// supervisor half is the shared trampoline map. Every vCPU running the space loads its root.
/// </summary>
/// <remarks>
/// <para>The Sentry writes the entries directly. Where the hypervisor shadows guest page tables (PVM),
/// it only learns about a changed entry when the guest writes it, so every entry that was present and
/// changed is rewritten in place from inside the guest (an atomic OR of zero) before the call returns;
/// a newly present entry needs nothing (no TLB or shadow caches an absent entry).</para>
/// <para>After a change that removes or narrows access, the space's generation is bumped: a vCPU whose
/// last flush is older flushes its TLB before it next runs the program, and one that runs the program
/// right now is kicked out first (Unmap and Protect return only when no vCPU can still use the old entry).</para>
/// <para>Map, Unmap and Protect may be called from any thread.</para>
/// </remarks>
public sealed unsafe class KvmAddressSpace : IAddressSpace
{
    private const ulong PageMask = 0xFFF;
    private readonly object gate = new();
    private readonly KvmPlatform platform;
    private readonly List<KvmExecutionContext> contexts = [];
    private readonly HashSet<ulong> tables = [];
    private readonly TouchList touches = new();
    private long generation;
    private int disposed;

    internal KvmAddressSpace(KvmPlatform platform, KvmMachine machine)
    {
        this.platform = platform;
        Machine = machine;
        RootOffset = machine.AllocatePages(1);
        tables.Add(RootOffset);
        ((ulong*)machine.Host(RootOffset))[SupervisorPml4Index] = KvmMachine.SupervisorPml4Entry;
    }

    internal KvmMachine Machine { get; }

    internal ulong RootOffset { get; }

    /// <summary>The root's guest-physical address (what CR3 holds).</summary>
    internal ulong Root => PhysicalOf(RootOffset);

    /// <summary>Bumped by every change that a vCPU's TLB may hold an older view of.</summary>
    internal long Generation => Volatile.Read(ref generation);

    internal bool IsDisposed => Volatile.Read(ref disposed) != 0;

    /// <inheritdoc/>
    /// <exception cref="ArgumentOutOfRangeException">The range is not page-aligned or reaches <see cref="KvmPlatform.MaxUserAddress"/>.</exception>
    public void Map(ulong address, ulong length, long fileOffset, MemoryAccess access)
    {
        CheckRange(address, length);
        if (fileOffset < 0 || ((ulong)fileOffset & PageMask) != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(fileOffset), $"file offset 0x{fileOffset:x} is not a page-aligned offset");
        }

        Machine.EnsureMemoryFileSlots(fileOffset, (long)length);
        ulong flags = LeafFlags(access);
        lock (gate)
        {
            ObjectDisposedException.ThrowIf(IsDisposed, this);
            for (ulong done = 0; done < length; done += PageSize)
            {
                ulong* entry = Leaf(address + done, create: true);
                ulong old = *entry;
                ulong updated = ((ulong)fileOffset + done) | flags;
                *entry = updated;
                if (NeedsRewrite(old, updated))
                {
                    touches.Add(EntryAddress(entry));
                }
            }

            Publish();
        }
    }

    /// <inheritdoc/>
    public void Unmap(ulong address, ulong length)
    {
        CheckRange(address, length);
        lock (gate)
        {
            ObjectDisposedException.ThrowIf(IsDisposed, this);
            var retired = new List<ulong>();
            var retiredEntries = new TouchList();
            UnmapRange(RootOffset, 4, 0, address, address + length, retired, retiredEntries);
            Publish();
            if (retired.Count > 0)
            {
                foreach (ulong page in retired)
                {
                    tables.Remove(page);
                }

                Machine.Retire(retired, retiredEntries);
            }
        }
    }

    /// <summary>
    /// Clears [start, end) below one table. A table entry whose whole span is in the range is cleared
    /// itself (one guest rewrite) and the tables below it go to the machine's quarantine with their
    /// present entries (rewritten only before the pages are reused), so that exec's unmapping of the
    /// whole user half, or a large munmap, costs a few rewrites rather than one per page.
    /// </summary>
    private void UnmapRange(ulong tableOffset, int level, ulong tableBase, ulong start, ulong end, List<ulong> retired, TouchList retiredEntries)
    {
        int shift = 12 + (9 * (level - 1));
        ulong span = 1UL << shift;
        var table = (ulong*)Machine.Host(tableOffset);
        int first = (int)((start - tableBase) >> shift);
        int last = (int)((end - 1 - tableBase) >> shift);
        for (int i = first; i <= last; i++)
        {
            ulong entry = table[i];
            if (entry == 0)
            {
                continue;
            }

            if (level == 1)
            {
                table[i] = 0;
                if ((entry & Present) != 0)
                {
                    touches.Add(EntryAddress(&table[i]));
                }

                continue;
            }

            if ((entry & Present) == 0)
            {
                continue;
            }

            ulong child = (entry & AddressMask) - PlatformGpa;
            ulong entryStart = tableBase + ((ulong)i << shift);
            ulong entryEnd = entryStart + span;
            if (start <= entryStart && entryEnd <= end)
            {
                table[i] = 0;
                touches.Add(EntryAddress(&table[i]));
                Detach(child, level - 1, retired, retiredEntries);
            }
            else if (level == 2 && CountPresent(child, Math.Max(start, entryStart), Math.Min(end, entryEnd)) > ReplaceThreshold)
            {
                // Many entries of one leaf table go: a copy without them replaces the table (one rewrite,
                // of the directory entry), and the old table goes to quarantine like a detached one.
                ulong copy = Machine.AllocatePages(1);
                tables.Add(copy);
                var source = (ulong*)Machine.Host(child);
                var target = (ulong*)Machine.Host(copy);
                int from = (int)((Math.Max(start, entryStart) - entryStart) >> 12);
                int to = (int)((Math.Min(end, entryEnd) - 1 - entryStart) >> 12);
                for (int j = 0; j < 512; j++)
                {
                    target[j] = j >= from && j <= to ? 0 : source[j];
                }

                table[i] = PhysicalOf(copy) | (entry & ~AddressMask);
                touches.Add(EntryAddress(&table[i]));
                Detach(child, 1, retired, retiredEntries);
            }
            else
            {
                UnmapRange(child, level - 1, entryStart, Math.Max(start, entryStart), Math.Min(end, entryEnd), retired, retiredEntries);
            }
        }
    }

    /// <summary>Above this many present entries to clear in one leaf table, Unmap replaces the table instead.</summary>
    private const int ReplaceThreshold = 4;

    private int CountPresent(ulong leafTableOffset, ulong start, ulong end)
    {
        var table = (ulong*)Machine.Host(leafTableOffset);
        int count = 0;
        for (ulong at = start; at < end; at += PageSize)
        {
            if ((table[(at >> 12) & 511] & Present) != 0)
            {
                count++;
            }
        }

        return count;
    }

    /// <summary>Clears a subtree cut off from its parent: its table pages and the entries that were present are collected.</summary>
    private void Detach(ulong tableOffset, int level, List<ulong> pages, TouchList present)
    {
        pages.Add(tableOffset);
        var table = (ulong*)Machine.Host(tableOffset);
        for (int i = 0; i < 512; i++)
        {
            ulong entry = table[i];
            if (entry == 0)
            {
                continue;
            }

            if (level > 1 && (entry & Present) != 0)
            {
                Detach((entry & AddressMask) - PlatformGpa, level - 1, pages, present);
            }

            table[i] = 0;
            if ((entry & Present) != 0)
            {
                present.Add(EntryAddress(&table[i]));
            }
        }
    }

    /// <inheritdoc/>
    public void Protect(ulong address, ulong length, MemoryAccess access)
    {
        CheckRange(address, length);
        ulong flags = LeafFlags(access);
        lock (gate)
        {
            ObjectDisposedException.ThrowIf(IsDisposed, this);
            Walk(address, length, (entry) =>
            {
                ulong old = *entry;
                if ((old & Mapped) == 0)
                {
                    return;
                }

                ulong updated = (old & AddressMask) | flags;
                if (updated != old)
                {
                    *entry = updated;
                    if (NeedsRewrite(old, updated))
                    {
                        touches.Add(EntryAddress(entry));
                    }
                }
            });
            Publish();
        }
    }

    /// <summary>
    /// Clears the tree (so no stale translation of it survives its pages' reuse) and frees its pages, unless
    /// a context of this space is still undisposed (its pages are then kept for good: see the code).
    /// </summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref disposed, 1) != 0)
        {
            return;
        }

        try
        {
            lock (gate)
            {
                // Clear every present entry, bottom up (the guest rewrites them before the pages are reused).
                Clear(RootOffset, 4);

                // A context still attached may have this root in its vCPU's CR3: its pages must then never
                // become another space's tables (the vCPU would walk them as its root), so they are kept.
                bool attached;
                lock (contexts)
                {
                    attached = contexts.Count > 0;
                }

                if (attached)
                {
                    // Its pages stay its own, but that vCPU must find the tree empty (a fault if it runs).
                    Machine.Touch(touches);
                }
                else
                {
                    Machine.Retire([.. tables], touches);
                }

                touches.Clear();
                tables.Clear();
            }
        }
        catch (ObjectDisposedException)
        {
            // The machine went first: nothing can run on these tables any more.
        }
        finally
        {
            platform.Forget(this);
        }
    }

    internal void Attach(KvmExecutionContext context)
    {
        lock (contexts)
        {
            contexts.Add(context);
        }
    }

    internal void Detach(KvmExecutionContext context)
    {
        lock (contexts)
        {
            contexts.Remove(context);
        }
    }

    /// <summary>Makes the entries changed since the last call visible to every vCPU: guest rewrites, then TLB shootdown.</summary>
    private void Publish()
    {
        if (touches.Count == 0)
        {
            return;
        }

        Machine.Touch(touches);
        touches.Clear();
        long now = Interlocked.Increment(ref generation);
        KvmExecutionContext[] running;
        lock (contexts)
        {
            running = [.. contexts];
        }

        foreach (var context in running)
        {
            context.WaitUntilFlushed(now);
        }
    }

    private void Clear(ulong tableOffset, int level)
    {
        var table = (ulong*)Machine.Host(tableOffset);
        int count = level == 4 ? SupervisorPml4Index : 512;
        for (int i = 0; i < count; i++)
        {
            ulong entry = table[i];
            if (entry == 0)
            {
                continue;
            }

            if (level > 1 && (entry & Present) != 0)
            {
                Clear((entry & AddressMask) - PlatformGpa, level - 1);
            }

            table[i] = 0;
            if ((entry & Present) != 0)
            {
                touches.Add(EntryAddress(&table[i]));
            }
        }
    }

    /// <summary>
    /// Whether replacing a leaf entry needs the guest to rewrite it (and vCPUs to flush): whenever it was
    /// present and changed. Only an identical entry (a MAP_FIXED of the same page with the same rights,
    /// as ld.so's read-only segments over its own reservation) needs nothing.
    /// </summary>
    /// <remarks>
    /// Skipping the rewrite for entries that keep their page and only gain write or execute was tried:
    /// the hypervisor here usually fixes such a stale translation itself, but not always. Once in a
    /// few hundred forks the fault reached the guest as a real one (a child's first write to a page its
    /// parent had already copied, now its own), and the program died of SIGSEGV.
    /// </remarks>
    private static bool NeedsRewrite(ulong old, ulong updated) => (old & Present) != 0 && old != updated;

    private static ulong LeafFlags(MemoryAccess access)
    {
        if ((access & MemoryAccess.All) == MemoryAccess.None)
        {
            return Mapped;
        }

        ulong flags = Present | User | Mapped | Accessed;
        if ((access & MemoryAccess.Write) != 0)
        {
            flags |= Writable | Dirty;
        }

        if ((access & MemoryAccess.Execute) == 0)
        {
            flags |= NoExecute;
        }

        return flags;
    }

    private ulong EntryAddress(ulong* entry) => VirtualOf((ulong)((byte*)entry - Machine.Host(0)));

    /// <summary>The leaf entry of <paramref name="address"/>, creating tables on the way when asked.</summary>
    private ulong* Leaf(ulong address, bool create)
    {
        ulong tableOffset = RootOffset;
        for (int shift = 39; shift > 12; shift -= 9)
        {
            var table = (ulong*)Machine.Host(tableOffset);
            ulong* entry = &table[(address >> shift) & 511];
            if ((*entry & Present) == 0)
            {
                if (!create)
                {
                    return null;
                }

                ulong page = Machine.AllocatePages(1);
                tables.Add(page);
                *entry = PhysicalOf(page) | Present | Writable | User | Accessed;
            }

            tableOffset = (*entry & AddressMask) - PlatformGpa;
        }

        return &((ulong*)Machine.Host(tableOffset))[(address >> 12) & 511];
    }

    /// <summary>
    /// Calls <paramref name="visit"/> for every existing leaf entry in the range, skipping what an absent
    /// entry of any level covers (512 GiB, 1 GiB or 2 MiB), so that exec's unmapping of the whole user
    /// half costs what is mapped, not what is not.
    /// </summary>
    private void Walk(ulong address, ulong length, EntryVisitor visit)
    {
        ulong end = address + length;
        ulong at = address;
        while (at < end)
        {
            ulong tableOffset = RootOffset;
            int shift = 39;
            for (; shift > 12; shift -= 9)
            {
                ulong next = ((ulong*)Machine.Host(tableOffset))[(at >> shift) & 511];
                if ((next & Present) == 0)
                {
                    break;
                }

                tableOffset = (next & AddressMask) - PlatformGpa;
            }

            if (shift > 12)
            {
                ulong span = 1UL << shift; // no table below this entry: skip all it covers
                at = (at + span) & ~(span - 1);
                continue;
            }

            ulong* entry = &((ulong*)Machine.Host(tableOffset))[(at >> 12) & 511];

            // Visit up to the end of this page table.
            ulong tableEnd = Math.Min(end, (at + LargePageSize) & ~(LargePageSize - 1));
            for (; at < tableEnd; at += PageSize, entry++)
            {
                visit(entry);
            }
        }
    }

    private delegate void EntryVisitor(ulong* entry);

    private static void CheckRange(ulong address, ulong length)
    {
        if ((address & PageMask) != 0 || (length & PageMask) != 0 || length == 0 ||
            address + length < address || address + length > SupervisorBase)
        {
            throw new ArgumentOutOfRangeException(
                nameof(address),
                $"range 0x{address:x}+0x{length:x} must be page-aligned, non-empty and below 0x{SupervisorBase:x} (the KVM platform's supervisor half)");
        }
    }
}
