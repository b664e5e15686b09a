using AppKernel.Platform;

namespace AppKernel.Sentry.Memory;

// fork: the child gets the same VMAs and, page for page, the same memory-file pages; private
// writable pages become copy-on-write in both (no data is copied, no file is read again).
internal sealed partial class MemoryManager
{
    private int users = 1;

    /// <summary>Another process shares this address space (vfork's CLONE_VM).</summary>
    public MemoryManager AddUser()
    {
        Interlocked.Increment(ref users);
        return this;
    }

    /// <summary>A process stops using this address space; the last one releases it.</summary>
    public void RemoveUser()
    {
        if (Interlocked.Decrement(ref users) == 0)
        {
            Dispose();
        }
    }

    /// <summary>
    /// The child's copy for fork. Its platform mappings are not made yet: the child's own thread
    /// calls <see cref="MirrorAll"/> (a platform may only be fast from the thread that runs it).
    /// The parent's private writable pages are made read-only here, so its next write copies.
    /// </summary>
    public MemoryManager Fork(IAddressSpace childSpace)
    {
        // The child's lock too: once its first VMA of a file is attached, a truncation elsewhere
        // may visit it, and must wait until its maps are complete.
        lock (gate)
        {
            var child = new MemoryManager(file, childSpace, MaxAddress)
            {
                MmapBase = MmapBase,
                StackLimit = StackLimit,
                ArgStart = ArgStart,
                ArgEnd = ArgEnd,
                EnvStart = EnvStart,
                EnvEnd = EnvEnd,
                Auxv = Auxv,
            };
            lock (child.gate)
            {
                child.BrkStart = BrkStart;
                child.Brk = Brk;
                foreach (var v in vmas.All)
                {
                    if (v.Value.DontFork)
                    {
                        continue;
                    }

                    child.vmas.Insert(v.Start, v.End, child.Attached(v.Value.Clone()));
                }

                for (int i = 0; i < pmas.Count; i++)
                {
                    var p = pmas[i];
                    if (!vmas.TryFind(p.Start, out var owner, out _) || owner.Value.DontFork)
                    {
                        continue;
                    }

                    file.IncRef(p.Value.FileOffset, (long)p.Length);
                    var vma = owner.Value;
                    var shared = vma.Shared;
                    var childPma = shared ? p.Value : p.Value with { Cow = true };
                    child.pmas.Insert(p.Start, p.End, childPma);
                    if (!shared && !p.Value.Cow)
                    {
                        pmas.SetValue(i, p.Value with { Cow = true });

                        // A pma may span VMAs with different access (a data segment after its RELRO part
                        // became read-only): every writable piece loses write access, whatever the first is.
                        foreach (var piece in vmas.Overlapping(p.Start, p.End))
                        {
                            ulong s = Math.Max(piece.Start, p.Start);
                            ulong e = Math.Min(piece.End, p.End);
                            if ((piece.Value.Access & MemoryAccess.Write) != 0)
                            {
                                addressSpace.Protect(s, e - s, piece.Value.Access & ~MemoryAccess.Write);
                            }
                        }
                    }
                }
            }

            return child;
        }
    }

    /// <summary>True when no other process shares this address space (exec may then reuse it).</summary>
    public bool IsExclusive => Volatile.Read(ref users) == 1;

    /// <summary>
    /// exec of a process that is alone in its address space: every mapping goes, and the platform's
    /// address space is handed over for the new image (no new stub process or VM state is made).
    /// </summary>
    public IAddressSpace Detach()
    {
        lock (gate)
        {
            if (users != 1 || disposed)
            {
                throw new InvalidOperationException("only an unshared, live address space can be handed over");
            }

            addressSpace.Unmap(MinMmapAddress, MaxAddress - MinMmapAddress);
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
            disposed = true;
            users = 0;
            return addressSpace;
        }
    }

    /// <summary>Makes every populated area visible in the platform (after <see cref="Fork"/>, on the child's thread).</summary>
    public void MirrorAll()
    {
        lock (gate)
        {
            foreach (var p in pmas.All)
            {
                foreach (var piece in vmas.Overlapping(p.Start, p.End))
                {
                    ulong s = Math.Max(piece.Start, p.Start);
                    ulong e = Math.Min(piece.End, p.End);
                    addressSpace.Map(s, e - s, p.Value.FileOffset + (long)(s - p.Start), Effective(piece.Value, p.Value));
                }
            }
        }
    }
}
