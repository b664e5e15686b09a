using AppKernel.Platform;
using AppKernel.Sentry.Memory;

namespace AppKernel.Sentry.Tests.Memory;

[TestClass]
public sealed class MemoryManagerTests
{
    private const ulong Page = 4096;
    private const ulong Top = 0x7f0000000000;

    private static (MemoryManager Mm, RecordingAddressSpace Space, MemoryFile File) Create()
    {
        var file = new MemoryFile(maxSize: 1L << 32);
        var space = new RecordingAddressSpace();
        return (new MemoryManager(file, space, Top), space, file);
    }

    private static ulong MapAnonymous(MemoryManager mm, ulong pages, MemoryAccess access = MemoryAccess.ReadWrite) =>
        mm.Map(new MmapRequest { Length = pages * Page, Access = access });

    [TestMethod]
    public void SmallMappingsArePopulatedAndMirroredAtOnce()
    {
        var (mm, space, file) = Create();
        using (file)
        {
            ulong a = MapAnonymous(mm, 4);
            for (ulong i = 0; i < 4; i++)
            {
                Assert.AreEqual(MemoryAccess.ReadWrite, space.Pages[a + i * Page].Access);
            }

            mm.Write(a + 10, [1, 2, 3]);
            var back = new byte[3];
            mm.Read(a + 10, back);
            CollectionAssert.AreEqual(new byte[] { 1, 2, 3 }, back);
        }
    }

    [TestMethod]
    public void PartialUnmapLeavesTheRestAndReadsThereFault()
    {
        var (mm, space, file) = Create();
        using (file)
        {
            ulong a = MapAnonymous(mm, 3);
            mm.Unmap(a + Page, Page);
            Assert.IsTrue(space.Pages.ContainsKey(a));
            Assert.IsFalse(space.Pages.ContainsKey(a + Page));
            Assert.IsTrue(space.Pages.ContainsKey(a + 2 * Page));
            Assert.AreEqual(Errno.EFAULT, Assert.ThrowsExactly<ErrnoException>(() => mm.Read(a + Page, new byte[1])).Errno);
            Assert.IsFalse(mm.HandleFault(a + Page, MemoryAccess.Read, out int code));
            Assert.AreEqual(1, code, "SEGV_MAPERR");
        }
    }

    [TestMethod]
    public void ReservingATebibyteOfNothingCostsNoMemory()
    {
        var (mm, space, file) = Create();
        using (file)
        {
            long before = file.AllocatedBytes;
            ulong a = mm.Map(new MmapRequest { Length = 1UL << 40, Access = MemoryAccess.None });
            Assert.AreEqual(before, file.AllocatedBytes);
            Assert.AreEqual(0, space.Pages.Count);
            mm.Protect(a + (1UL << 39), Page, MemoryAccess.ReadWrite, growsDown: false);
            Assert.AreEqual(before + (long)Page, file.AllocatedBytes);
        }
    }

    [TestMethod]
    public void ForkMakesEveryWritablePieceOfASharedAreaReadOnlyInTheParent()
    {
        var (mm, space, file) = Create();
        using (file)
        {
            // One populated area over two VMAs: the first made read-only afterwards (RELRO-like).
            ulong a = MapAnonymous(mm, 4);
            mm.Protect(a, 2 * Page, MemoryAccess.Read, growsDown: false);
            var childSpace = new RecordingAddressSpace();
            var child = mm.Fork(childSpace);
            Assert.AreEqual(MemoryAccess.Read, space.Pages[a].Access);
            Assert.AreEqual(MemoryAccess.Read, space.Pages[a + 3 * Page].Access, "the writable piece must become copy-on-write too");
            child.MirrorAll();
            Assert.AreEqual(space.Pages[a + 3 * Page].Offset, childSpace.Pages[a + 3 * Page].Offset, "the child shares the page");
            Assert.AreEqual(MemoryAccess.Read, childSpace.Pages[a + 3 * Page].Access);

            // A write in the child copies the page; the parent keeps its bytes.
            mm.Write(a + 3 * Page, [7]);
            Assert.IsTrue(child.HandleFault(a + 3 * Page, MemoryAccess.Write, out _));
            Assert.AreNotEqual(space.Pages[a + 3 * Page].Offset, childSpace.Pages[a + 3 * Page].Offset);
            child.Write(a + 3 * Page, [9]);
            var parentByte = new byte[1];
            mm.Read(a + 3 * Page, parentByte);
            Assert.AreEqual(7, parentByte[0]);
            child.Dispose();
        }
    }

    [TestMethod]
    public void MremapMovesThePagesWithoutCopying()
    {
        var (mm, space, file) = Create();
        using (file)
        {
            ulong a = MapAnonymous(mm, 2);
            mm.Write(a, [42]);
            long offset = space.Pages[a].Offset;
            MapAnonymous(mm, 1); // something in the way of growing in place
            ulong moved = mm.Remap(a, 2 * Page, 64 * Page, mayMove: true, fixedTarget: false, 0);
            var value = new byte[1];
            mm.Read(moved, value);
            Assert.AreEqual(42, value[0]);
            Assert.AreEqual(offset, space.Pages[moved].Offset, "same memory-file page, new address");
            Assert.IsFalse(space.Pages.ContainsKey(a) && a != moved);
        }
    }

    [TestMethod]
    public void DontNeedZeroesPrivateAnonymousMemory()
    {
        var (mm, _, file) = Create();
        using (file)
        {
            ulong a = MapAnonymous(mm, 2);
            mm.Write(a, [5]);
            mm.Advise(a, 2 * Page, Abi.LinuxConstants.MADV_DONTNEED);
            var value = new byte[1];
            mm.Read(a, value);
            Assert.AreEqual(0, value[0]);
        }
    }

    [TestMethod]
    public void WritingThroughTheSentryToAReadOnlyMappingIsEFAULT()
    {
        var (mm, _, file) = Create();
        using (file)
        {
            ulong a = MapAnonymous(mm, 1, MemoryAccess.Read);
            Assert.AreEqual(Errno.EFAULT, Assert.ThrowsExactly<ErrnoException>(() => mm.Write(a, [1])).Errno);
            Assert.IsFalse(mm.HandleFault(a, MemoryAccess.Write, out int code));
            Assert.AreEqual(2, code, "SEGV_ACCERR");
        }
    }

    [TestMethod]
    public void AFaultTheMappingAlreadyAllowsMapsThePageAgain()
    {
        var (mm, space, file) = Create();
        using (file)
        {
            ulong a = MapAnonymous(mm, 2, MemoryAccess.ReadWrite);
            mm.Write(a, [7]);
            var before = space.Pages[a];

            // The platform lost the page (a stale view): the fault maps the same page again.
            space.Pages.Remove(a);
            Assert.IsTrue(mm.HandleFault(a, MemoryAccess.Write, out _));
            Assert.AreEqual(before, space.Pages[a]);
            Assert.AreEqual(1, mm.SpuriousFaults);

            // An access the mapping does not allow is still refused, and an unknown one is not guessed.
            mm.Protect(a, 4096, MemoryAccess.Read, growsDown: false);
            Assert.IsFalse(mm.HandleFault(a, MemoryAccess.Write, out int code));
            Assert.AreEqual(2, code, "SEGV_ACCERR");
            Assert.IsFalse(mm.HandleFault(a, MemoryAccess.None, out _));
            Assert.AreEqual(1, mm.SpuriousFaults);
        }
    }
}
