using AppKernel.Platform;
using AppKernel.Sentry.Abi;
using AppKernel.Sentry.Memory;
using AppKernel.Vfs;

namespace AppKernel.Sentry.Tests.Memory;

/// <summary>
/// A file's pages leaving its mappings (truncation, punched holes) and the count of writable
/// shared mappings that F_SEAL_WRITE waits out, on a memory manager over a recording platform.
/// </summary>
[TestClass]
public sealed class FileMappingTests
{
    private const ulong Page = 4096;
    private const ulong Top = 0x7f0000000000;

    /// <summary>A file of memory-file pages with a size: enough of tmpfs for the manager.</summary>
    private sealed class PageFile(MemoryFile memory) : IMappable
    {
        private readonly Dictionary<long, long> pages = [];

        public long FileSize { get; set; }

        public long Size => FileSize;

        public void GetPages(long fileOffset, Span<long> pageOffsets)
        {
            for (int i = 0; i < pageOffsets.Length; i++)
            {
                long index = fileOffset / (long)Page + i;
                if (!pages.TryGetValue(index, out long page))
                {
                    page = memory.Allocate((long)Page);
                    pages.Add(index, page);
                }

                memory.IncRef(page, (long)Page);
                pageOffsets[i] = page;
            }
        }

        /// <summary>Truncation as a file does it: the size, the file's pages, then the mappings.</summary>
        public void Truncate(long size)
        {
            FileSize = size;
            long first = (size + (long)Page - 1) / (long)Page;
            foreach (long index in pages.Keys.Where(i => i >= first).ToList())
            {
                memory.DecRef(pages[index], (long)Page);
                pages.Remove(index);
            }

            Set.DropPages(first * (long)Page, long.MaxValue - first * (long)Page, privateCopiesToo: true);
        }

        public void PunchPage(long index)
        {
            if (pages.Remove(index, out long page))
            {
                memory.DecRef(page, (long)Page);
            }

            Set.DropPages(index * (long)Page, (long)Page, privateCopiesToo: false);
        }

        public MappingSet Set => ((IMappable)this).Mappings!;

        MappingSet? IMappable.Mappings => set ??= new MappingSet(this);

        private MappingSet? set;
    }

    private static (MemoryManager Mm, RecordingAddressSpace Space, MemoryFile Memory, PageFile File) Create(long size)
    {
        var memory = new MemoryFile(maxSize: 1L << 32);
        var space = new RecordingAddressSpace();
        return (new MemoryManager(memory, space, Top), space, memory, new PageFile(memory) { FileSize = size });
    }

    private static ulong MapFile(MemoryManager mm, PageFile file, ulong pages, bool shared, long offset = 0, MemoryAccess maxAccess = MemoryAccess.All) =>
        mm.Map(new MmapRequest { Length = pages * Page, Access = MemoryAccess.ReadWrite, Shared = shared, Mappable = file, FileOffset = offset, MaxAccess = maxAccess });

    [TestMethod]
    public void ShrinkingDropsEveryMappingsPagesPastTheEndAndFaultsThereAreSigbus()
    {
        var (mm, space, memory, file) = Create(3 * (long)Page);
        using (memory)
        {
            ulong shared = MapFile(mm, file, 3, shared: true);
            ulong copied = MapFile(mm, file, 3, shared: false);
            Assert.IsTrue(mm.HandleFault(copied + 2 * Page, MemoryAccess.Write, out _), "the write copies the page");
            mm.Write(copied + 2 * Page, [7]);
            long allocated = memory.AllocatedBytes;

            file.Truncate((long)Page + 100);
            Assert.IsTrue(space.Pages.ContainsKey(shared + Page), "the partial last page stays");
            Assert.IsFalse(space.Pages.ContainsKey(shared + 2 * Page));
            Assert.IsFalse(space.Pages.ContainsKey(copied + 2 * Page), "a truncation drops private copies too");
            Assert.IsTrue(memory.AllocatedBytes < allocated, "the dropped pages went back to the memory file");
            Assert.IsFalse(mm.HandleFault(shared + 2 * Page, MemoryAccess.Read, out int signal, out int code));
            Assert.AreEqual((Signals.SIGBUS, Signals.BUS_ADRERR), (signal, code));
            Assert.IsFalse(mm.HandleFault(copied + 2 * Page, MemoryAccess.Read, out signal, out _));
            Assert.AreEqual(Signals.SIGBUS, signal);

            // Grown again: the pages come back from the file, zero.
            file.FileSize = 3 * (long)Page;
            Assert.IsTrue(mm.HandleFault(copied + 2 * Page, MemoryAccess.Read, out _, out _));
            var value = new byte[1];
            mm.Read(copied + 2 * Page, value);
            Assert.AreEqual(0, value[0]);
            mm.Dispose();
        }
    }

    [TestMethod]
    public void APunchedHoleKeepsPrivateCopiesAlsoThoseAForkShares()
    {
        var (mm, space, memory, file) = Create(2 * (long)Page);
        using (memory)
        {
            ulong shared = MapFile(mm, file, 2, shared: true);
            ulong copied = MapFile(mm, file, 2, shared: false);
            ulong untouched = MapFile(mm, file, 2, shared: false);
            Assert.IsTrue(mm.HandleFault(copied + Page, MemoryAccess.Write, out _));
            mm.Write(copied + Page, [9]);
            var childSpace = new RecordingAddressSpace();
            var child = mm.Fork(childSpace);
            child.MirrorAll();

            file.PunchPage(1);
            foreach (var (m, s) in new[] { (mm, space), (child, childSpace) })
            {
                Assert.IsFalse(s.Pages.ContainsKey(shared + Page));
                Assert.IsFalse(s.Pages.ContainsKey(untouched + Page));
                Assert.IsTrue(s.Pages.ContainsKey(shared), "page 0 was not punched");
                Assert.IsTrue(s.Pages.ContainsKey(copied + Page), "the private copy stays");
                var value = new byte[1];
                m.Read(copied + Page, value);
                Assert.AreEqual(9, value[0]);
            }

            child.Dispose();
            mm.Dispose();
        }
    }

    [TestMethod]
    public void WritableSharedPiecesAreCountedThroughSplitsMergesForksAndUnmaps()
    {
        var (mm, _, memory, file) = Create(8 * (long)Page);
        using (memory)
        {
            ulong a = MapFile(mm, file, 4, shared: true);
            MapFile(mm, file, 4, shared: false);
            MapFile(mm, file, 4, shared: true, maxAccess: MemoryAccess.Read | MemoryAccess.Execute);
            Assert.AreEqual(1, file.Set.WritableSharedCount);
            mm.Protect(a + Page, Page, MemoryAccess.Read, growsDown: false);
            Assert.AreEqual(3, file.Set.WritableSharedCount, "split in three");
            mm.Protect(a + Page, Page, MemoryAccess.ReadWrite, growsDown: false);
            Assert.AreEqual(1, file.Set.WritableSharedCount, "merged again");
            var child = mm.Fork(new RecordingAddressSpace());
            Assert.AreEqual(2, file.Set.WritableSharedCount);
            Assert.IsFalse(file.Set.TryDenyWritable());
            mm.Unmap(a, 2 * Page);
            mm.Unmap(a + 2 * Page, 2 * Page);
            child.Dispose();
            Assert.AreEqual(0, file.Set.WritableSharedCount);
            Assert.IsTrue(file.Set.TryDenyWritable());
            Assert.AreEqual(Errno.EPERM, Assert.ThrowsExactly<ErrnoException>(() => MapFile(mm, file, 1, shared: true)).Errno);
            MapFile(mm, file, 1, shared: true, maxAccess: MemoryAccess.Read);
            MapFile(mm, file, 1, shared: false);
            Assert.IsFalse(file.Set.IsEmpty);
            mm.Dispose();
            Assert.IsTrue(file.Set.IsEmpty, "a disposed address space leaves the set");
        }
    }
}
