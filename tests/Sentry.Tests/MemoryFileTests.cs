using AppKernel.Sentry.Memory;

namespace AppKernel.Sentry.Tests;

[TestClass]
public sealed class MemoryFileTests
{
    [TestMethod]
    public void FreedPagesAreReusedAndZeroed()
    {
        using var file = new MemoryFile(maxSize: 1L << 30);
        long a = file.Allocate(8192);
        file.GetSpan(a, 8192).Fill(0xAB);
        Assert.AreEqual(1, file.RefCount(a));
        file.DecRef(a, 8192);
        Assert.AreEqual(0, file.RefCount(a));
        long b = file.Allocate(4096);
        Assert.AreEqual(a, b);
        Assert.AreEqual(0, file.GetSpan(b, 4096)[100]);
    }
}
