using System.Runtime.Intrinsics.X86;

namespace AppKernel.Platform.Ptrace;

/// <summary>
/// The size of the XSAVE image the kernel exchanges through PTRACE_GETREGSET / SETREGSET
/// (NT_X86_XSTATE): the standard (uncompacted) format for every feature enabled in XCR0, from
/// CPUID leaf 0xD. With AVX-512 and AMX tile data this is over 10 KiB.
/// </summary>
internal static class ExtendedStateLayout
{
    /// <summary>The XSAVE image size in bytes.</summary>
    public static readonly int Size = ReadSize();

    private static int ReadSize()
    {
        if (!X86Base.IsSupported)
        {
            return 0;
        }

        var (maxLeaf, _, _, _) = X86Base.CpuId(0, 0);
        if (maxLeaf < 0xD)
        {
            return 512; // FXSAVE only
        }

        // Leaf 0xD, sub-leaf 0: EBX is the size for the features enabled in XCR0.
        var (_, enabledSize, _, _) = X86Base.CpuId(0xD, 0);
        return Math.Max(enabledSize, 576);
    }
}
