using System.Runtime.ExceptionServices;
using AppKernel.Platform.Kvm;
using AppKernel.Sentry.Memory;
using Iced.Intel;

namespace AppKernel.Platform.Kvm.Tests;

/// <summary>A KVM platform, a memory file and an address space, with helpers to place small programs.</summary>
internal sealed class Machine : IDisposable
{
    public const int Page = 4096;
    public const ulong Code = 0x40_0000;
    public const ulong Data = 0x60_0000;

    private static readonly Lazy<string?> Unavailable = new(() =>
    {
        try
        {
            using var probe = new KvmPlatform();
            probe.EnsureAvailable();
            return null;
        }
        catch (PlatformUnavailableException e)
        {
            return e.Message;
        }
    });

    public Machine()
    {
        if (Unavailable.Value is { } reason)
        {
            Assert.Inconclusive($"KVM platform unavailable: {reason}");
        }

        Platform = new KvmPlatform();
        Memory = new MemoryFile(maxSize: 1L << 30);
        Space = (KvmAddressSpace)Platform.CreateAddressSpace(Memory);
    }

    public KvmPlatform Platform { get; }

    public MemoryFile Memory { get; }

    public KvmAddressSpace Space { get; }

    public long MapNew(ulong address, int pages, MemoryAccess access)
    {
        long offset = Memory.Allocate(pages * Page);
        Space.Map(address, (ulong)(pages * Page), offset, access);
        return offset;
    }

    /// <summary>Assembles <paramref name="program"/> at <see cref="Code"/> (read+execute) and maps a read-write page at <see cref="Data"/>.</summary>
    public (long Code, long Data) Load(Action<Assembler> program)
    {
        var bytes = Assemble(Code, program);
        long code = MapNew(Code, 1, MemoryAccess.ReadExecute);
        bytes.CopyTo(Memory.GetSpan(code, bytes.Length));
        long data = MapNew(Data, 1, MemoryAccess.ReadWrite);
        return (code, data);
    }

    public static byte[] Assemble(ulong address, Action<Assembler> program)
    {
        var assembler = new Assembler(64);
        program(assembler);
        using var stream = new MemoryStream();
        assembler.Assemble(new StreamCodeWriter(stream), address);
        return stream.ToArray();
    }

    public static CpuState NewState(ulong rip = Code)
    {
        var state = new CpuState(KvmPlatform.ExtendedStateSize);
        state.Registers.Rip = rip;
        state.Registers.Rsp = Data + Page - 64;
        return state;
    }

    public ulong Read(long offset, int index = 0) => BitConverter.ToUInt64(Memory.GetSpan(offset + (index * 8), 8));

    public void Dispose()
    {
        Space.Dispose();
        Platform.Dispose();
        Memory.Dispose();
    }

    /// <summary>Runs <paramref name="body"/> on a dedicated thread and fails instead of hanging.</summary>
    public static void OnThread(Action body, int timeoutSeconds = 60)
    {
        ExceptionDispatchInfo? failure = null;
        var thread = new Thread(() =>
        {
            try
            {
                body();
            }
            catch (Exception e)
            {
                failure = ExceptionDispatchInfo.Capture(e);
            }
        }, 4 << 20)
        {
            IsBackground = true,
        };
        thread.Start();
        if (!thread.Join(TimeSpan.FromSeconds(timeoutSeconds)))
        {
            Assert.Fail($"the test did not finish within {timeoutSeconds} s");
        }

        failure?.Throw();
    }
}
