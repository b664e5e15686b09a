using System.Buffers.Binary;
using System.Runtime.Intrinsics.X86;

namespace AppKernel.Sentry.Kernel;

/// <summary>The XSAVE area: its size on this CPU and the initial image a new thread or a signal handler starts with.</summary>
internal static class ExtendedState
{
    /// <summary>Bytes XSAVE writes for the features the host enabled (CPUID.(EAX=0DH,ECX=0):EBX), at least the 576-byte legacy+header area.</summary>
    public static int Size { get; } = Math.Max(576, X86Base.IsSupported ? X86Base.CpuId(0xD, 0).Ebx : 576);

    /// <summary>The enabled features (XCR0) as CPUID reports the supported mask; used for the signal frame's xfeatures.</summary>
    public static ulong Features { get; } = X86Base.IsSupported
        ? (uint)X86Base.CpuId(0xD, 0).Eax | ((ulong)(uint)X86Base.CpuId(0xD, 0).Edx << 32)
        : 3;

    /// <summary>Writes the initial FP state: x87 control word 0x37F, MXCSR 0x1F80, every component in its init state.</summary>
    public static void WriteInitial(Span<byte> image)
    {
        image.Clear();
        BinaryPrimitives.WriteUInt16LittleEndian(image, 0x37F);
        BinaryPrimitives.WriteUInt32LittleEndian(image[24..], 0x1F80);
        BinaryPrimitives.WriteUInt32LittleEndian(image[28..], 0xFFFF); // MXCSR_MASK
        // XSTATE_BV (offset 512) = 0: every component is in its initial configuration.
    }
}
