using AppKernel.Sentry.Syscalls;

namespace AppKernel.Sentry.Tests;

[TestClass]
public sealed class SyscallDocumentTests
{
    [TestMethod]
    public void TheCompatibilityPageMatchesTheTable()
    {
        var directory = new DirectoryInfo(AppContext.BaseDirectory);
        while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "Sdk.sln")))
        {
            directory = directory.Parent;
        }

        Assert.IsNotNull(directory);
        string page = Path.Combine(directory.FullName, "docs", "syscalls.md");
        string expected = SyscallDocument.Render(SyscallTable.Build([]));
        if (Environment.GetEnvironmentVariable("APPKERNEL_UPDATE_DOCS") == "1")
        {
            File.WriteAllText(page, expected);
        }

        Assert.IsTrue(File.Exists(page), "docs/syscalls.md is missing; regenerate it with APPKERNEL_UPDATE_DOCS=1");
        Assert.AreEqual(expected, File.ReadAllText(page), "docs/syscalls.md is stale; regenerate it with APPKERNEL_UPDATE_DOCS=1");
    }

    [TestMethod]
    public void EveryLinuxSyscallHasAnEntryAndImplementedOnesHaveHandlers()
    {
        var table = SyscallTable.Build([]);
        Assert.IsTrue(table.TryGetEntry(0, out var read));
        Assert.AreEqual("read", read.Name);
        Assert.AreNotEqual(AppKernel.Syscalls.SupportLevel.Unimplemented, read.Support);
        Assert.IsTrue(table.TryGetEntry(462, out var mseal));
        Assert.AreEqual("mseal", mseal.Name);
        Assert.AreEqual(AppKernel.Syscalls.SupportLevel.Unimplemented, mseal.Support);
    }
}
