using System.Runtime.InteropServices;
using AppKernel.Memory;
using AppKernel.Platform.Ptrace.Native;
using AppKernel.Platform.Ptrace.Stub;

namespace AppKernel.Platform.Ptrace;

/// <summary>
/// The ptrace platform: each address space is a tiny stub process (machine code the platform
/// writes itself, holding no host fd but the memory file, confined by a seccomp filter), each
/// program thread a stub thread whose every syscall stops under PTRACE_SYSEMU.
/// </summary>
/// <remarks>
/// <para>Threading contract, in short (see <see cref="PtraceAddressSpace"/> and
/// <see cref="PtraceExecutionContext"/>): <see cref="CreateAddressSpace"/> and
/// <see cref="CreateExecutionContext"/> may be called from any thread; a context belongs to the first
/// host thread that calls its <c>Switch</c>, which must be a dedicated thread that outlives it or disposes
/// it first. Map/Unmap/Protect are fastest on a thread that runs a context of that address space.</para>
/// <para>Create CPU states with <c>new CpuState(PtracePlatform.ExtendedStateSize)</c>.</para>
/// </remarks>
public sealed class PtracePlatform : IPlatform
{
    private readonly object gate = new();
    private readonly HashSet<PtraceAddressSpace> addressSpaces = [];
    private ControlThread? control;
    private StubLauncher? launcher;
    private bool disposed;

    /// <inheritdoc/>
    public string Name => "ptrace";

    /// <inheritdoc/>
    public PlatformCapabilities Capabilities => PlatformCapabilities.MultipleThreads;

    /// <summary>The stub's page at 0x7ffb00000000: programs get everything below it.</summary>
    public ulong MaxUserAddress => StubLayout.Base;

    /// <summary>
    /// The size of the XSAVE image (NT_X86_XSTATE) a <see cref="CpuState"/> needs on this CPU, from
    /// CPUID leaf 0xD; with AVX-512 and AMX it is over 10 KiB.
    /// </summary>
    public static int ExtendedStateSize => ExtendedStateLayout.Size;

    /// <summary>Pin each tracing host thread and its stub threads to one CPU (default true; a cross-CPU round trip costs several times more).</summary>
    public bool PinThreadsToCpus { get; set; } = true;

    /// <inheritdoc/>
    /// <remarks>The probe (a throwaway stub) runs once per platform instance; later calls return at once.</remarks>
    public void EnsureAvailable()
    {
        if (Volatile.Read(ref available))
        {
            return;
        }

        Probe();
        Volatile.Write(ref available, true);
    }

    private bool available;

    private void Probe()
    {
        if (!OperatingSystem.IsLinux())
        {
            throw new PlatformUnavailableException("the ptrace platform needs Linux");
        }

        if (RuntimeInformation.ProcessArchitecture != Architecture.X64)
        {
            throw new PlatformUnavailableException($"the ptrace platform needs an x86-64 process, not {RuntimeInformation.ProcessArchitecture}");
        }

        string? yama = ReadSetting("/proc/sys/kernel/yama/ptrace_scope");
        if (yama == "3")
        {
            throw new PlatformUnavailableException("ptrace is disabled by Yama (/proc/sys/kernel/yama/ptrace_scope is 3; only a reboot can lower it)");
        }

        // The real test: start a stub with a throwaway memory file, seize it, and kill it.
        int memfd = LibC.MemfdCreate("appkernel-probe", LibC.MFD_CLOEXEC);
        if (memfd < 0)
        {
            throw new PlatformUnavailableException($"memfd_create failed: {LibC.Describe(LibC.Errno)}");
        }

        try
        {
            var (runner, stubs) = Start();
            runner.Invoke(() => StubLauncher.KillAndReap(stubs.Launch(memfd)));
        }
        catch (PlatformUnavailableException e) when (yama is "1" or "2")
        {
            throw new PlatformUnavailableException($"{e.Message} (Yama ptrace_scope is {yama})", e);
        }
        finally
        {
            LibC.Close(memfd);
        }
    }

    /// <inheritdoc/>
    /// <remarks>Starts a stub process; may be called from any thread.</remarks>
    public IAddressSpace CreateAddressSpace(IMemoryFile memoryFile)
    {
        ArgumentNullException.ThrowIfNull(memoryFile);
        var (runner, stubs) = Start();
        var leader = runner.Invoke(() => stubs.Launch(memoryFile.FileDescriptor));
        var space = new PtraceAddressSpace(this, runner, leader);
        lock (gate)
        {
            if (disposed)
            {
                space.Dispose();
                throw new ObjectDisposedException(nameof(PtracePlatform));
            }

            addressSpaces.Add(space);
        }

        return space;
    }

    /// <inheritdoc/>
    /// <remarks>
    /// Creates a stub thread (a clone injected by the control thread); may be called from any thread.
    /// The first host thread that calls <c>Switch</c> on the context becomes its tracer.
    /// </remarks>
    public IExecutionContext CreateExecutionContext(IAddressSpace addressSpace)
    {
        if (addressSpace is not PtraceAddressSpace space)
        {
            throw new ArgumentException("the address space was not created by the ptrace platform", nameof(addressSpace));
        }

        return space.CreateContext(PinThreadsToCpus);
    }

    /// <summary>Kills every stub process left and stops the control thread.</summary>
    public void Dispose()
    {
        PtraceAddressSpace[] spaces;
        lock (gate)
        {
            if (disposed)
            {
                return;
            }

            disposed = true;
            spaces = [.. addressSpaces];
        }

        foreach (var space in spaces)
        {
            space.Dispose();
        }

        control?.Invoke(() => launcher?.Dispose());
        control?.Dispose();
    }

    internal void Forget(PtraceAddressSpace space)
    {
        lock (gate)
        {
            addressSpaces.Remove(space);
        }
    }

    private (ControlThread Control, StubLauncher Launcher) Start()
    {
        lock (gate)
        {
            ObjectDisposedException.ThrowIf(disposed, this);
            if (control is null)
            {
                var thread = new ControlThread();
                try
                {
                    launcher = thread.Invoke(() => new StubLauncher());
                }
                catch
                {
                    thread.Dispose();
                    throw;
                }

                control = thread;
            }

            return (control, launcher!);
        }
    }

    private static string? ReadSetting(string path)
    {
        try
        {
            return File.ReadAllText(path).Trim();
        }
        catch (IOException)
        {
            return null;
        }
        catch (UnauthorizedAccessException)
        {
            return null;
        }
    }
}
