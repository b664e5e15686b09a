using System.Runtime.ExceptionServices;
using AppKernel.Platform.Ptrace;
using AppKernel.Sentry.Memory;
using Iced.Intel;

namespace AppKernel.Platform.Ptrace.Tests;

/// <summary>A platform, a memory file and one address space, plus helpers to load test programs.</summary>
internal sealed class Harness : IDisposable
{
    public const int Page = 4096;

    /// <summary>Where test programs are loaded.</summary>
    public const ulong CodeAddress = 0x40_0000;

    /// <summary>A read-write data page for test programs.</summary>
    public const ulong DataAddress = 0x60_0000;

    public Harness()
    {
        Platform = new PtracePlatform();
        Memory = new MemoryFile(maxSize: 256L << 20);
        Space = (PtraceAddressSpace)Platform.CreateAddressSpace(Memory);
    }

    public PtracePlatform Platform { get; }

    public MemoryFile Memory { get; }

    public PtraceAddressSpace Space { get; }

    /// <summary>Allocates <paramref name="pages"/> fresh pages of the memory file and maps them at <paramref name="address"/>.</summary>
    public long MapNew(ulong address, int pages, MemoryAccess access)
    {
        long offset = Memory.Allocate(pages * Page);
        Space.Map(address, (ulong)(pages * Page), offset, access);
        return offset;
    }

    /// <summary>Assembles a program at <see cref="CodeAddress"/>, maps it read+execute, and maps the data page read-write.</summary>
    public (long CodeOffset, long DataOffset) Load(Action<Assembler> program)
    {
        byte[] code = Assemble(CodeAddress, program);
        long codeOffset = MapNew(CodeAddress, 1, MemoryAccess.ReadExecute);
        code.CopyTo(Memory.GetSpan(codeOffset, code.Length));
        long dataOffset = MapNew(DataAddress, 1, MemoryAccess.ReadWrite);
        return (codeOffset, dataOffset);
    }

    public static byte[] Assemble(ulong address, Action<Assembler> program)
    {
        var assembler = new Assembler(64);
        program(assembler);
        using var stream = new MemoryStream();
        assembler.Assemble(new StreamCodeWriter(stream), address);
        return stream.ToArray();
    }

    public static CpuState NewState(ulong rip = CodeAddress)
    {
        var state = new CpuState(PtracePlatform.ExtendedStateSize);
        state.Registers.Rip = rip;
        return state;
    }

    public ulong ReadData(long dataOffset, int index = 0) =>
        BitConverter.ToUInt64(Memory.GetSpan(dataOffset + (index * 8), 8));

    public void Dispose()
    {
        Space.Dispose();
        Platform.Dispose();
        Memory.Dispose();
    }

    /// <summary>
    /// Runs <paramref name="body"/> on a dedicated thread (the contract: a context is driven by one
    /// dedicated thread, which gets pinned to a CPU) and fails instead of hanging.
    /// </summary>
    public static void OnThread(Action body, int timeoutSeconds = 60)
    {
        ExceptionDispatchInfo? error = null;
        var thread = new Thread(() =>
        {
            try
            {
                body();
            }
            catch (Exception e)
            {
                error = ExceptionDispatchInfo.Capture(e);
            }
        })
        { IsBackground = true, Name = "test tracer" };
        thread.Start();
        if (!thread.Join(TimeSpan.FromSeconds(timeoutSeconds)))
        {
            Assert.Fail($"the test body did not finish within {timeoutSeconds} s (hang)");
        }

        error?.Throw();
    }
}
