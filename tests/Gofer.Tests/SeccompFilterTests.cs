using AppKernel.Gofer.Server;

namespace AppKernel.Gofer.Tests;

/// <summary>The shape of the Gofer's seccomp program (its effect is probed in ReadOnlyGoferTests.ConfinementIsInPlace).</summary>
[TestClass]
public sealed class SeccompFilterTests
{
    [TestMethod]
    public void AllowAndDenyListsAreDisjointSoTheirOrderDoesNotMatter()
    {
        var denied = Confinement.Denied.Select(d => d.Number).ToHashSet();
        var both = Confinement.Allowed.Where(denied.Contains).ToList();
        Assert.IsEmpty(both, $"on both lists: {string.Join(", ", both)}");
        Assert.HasCount(Confinement.Allowed.Distinct().Count(), Confinement.Allowed, "an allowed syscall listed twice");
    }

    [TestMethod]
    public void TheProgramFitsTheKernelsLimitAndEndsInAReturn()
    {
        var program = Confinement.BuildFilter();
        Assert.IsLessThanOrEqualTo(4096, program.Length, "BPF_MAXINSNS");
        Assert.AreEqual(0x06, program[^1].Code, "the last instruction returns");
    }
}
