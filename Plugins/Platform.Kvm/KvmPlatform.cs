using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;
using AppKernel.Memory;
using AppKernel.Platform.Kvm.Native;

namespace AppKernel.Platform.Kvm;

/// <summary>
/// The KVM platform: program threads run in user mode of a KVM virtual machine, one vCPU each; a
/// supervisor trampoline the platform assembles itself turns their syscalls, faults and interrupts into
/// exits that <see cref="IExecutionContext.Switch"/> reports, with the registers exchanged through a page
/// of guest memory (no register ioctls on the syscall path).
/// </summary>
/// <remarks>
/// <para>One VM per memory file (one per sandbox); each address space is a page-table root in it, so a
/// fork costs a page-table tree, not a VM. vCPUs are pooled per VM. The guest works under KVM's shadow
/// paging backends (such as <c>kvm_pvm</c>, used on hosts without
/// nested VMX) as well as hardware VMX/SVM: it is an ordinary 64-bit ring-0 guest.</para>
/// <para>Create CPU states with <c>new CpuState(KvmPlatform.ExtendedStateSize)</c>.</para>
/// </remarks>
public sealed unsafe class KvmPlatform : IPlatform
{
    /// <summary>The default KVM device.</summary>
    public const string DefaultDevicePath = "/dev/kvm";

    private static readonly TimeSpan ProbeTimeout = TimeSpan.FromSeconds(20);
    private readonly object gate = new();
    private readonly Dictionary<IMemoryFile, KvmMachine> machines = new(ReferenceEqualityComparer.Instance);
    private readonly string devicePath;
    private KvmCpuidEntry2[] cpuid = [];
    private int deviceFd = -1;
    private int xsaveSize = 4096;
    private bool available;
    private bool disposed;

    /// <summary>Creates the platform on <c>/dev/kvm</c>.</summary>
    public KvmPlatform()
        : this(DefaultDevicePath)
    {
    }

    /// <summary>Creates the platform on another KVM device node (for tests and unusual setups).</summary>
    public KvmPlatform(string devicePath)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(devicePath);
        this.devicePath = devicePath;
    }

    /// <inheritdoc/>
    public string Name => "kvm";

    /// <inheritdoc/>
    public PlatformCapabilities Capabilities =>
        PlatformCapabilities.MultipleThreads | PlatformCapabilities.PreciseFaultAccess | PlatformCapabilities.HardwareVirtualization |
        PlatformCapabilities.CpuTimeInTaskThread | PlatformCapabilities.ReusableTaskThreads;

    /// <summary>0x7f8000000000: the last 512 GiB of the lower half hold the trampoline and its data.</summary>
    public ulong MaxUserAddress => GuestLayout.SupervisorBase;

    /// <summary>The size of the XSAVE image a <see cref="CpuState"/> needs (CPUID leaf 0xD, as the Sentry sizes it).</summary>
    public static int ExtendedStateSize { get; } = Math.Max(576, X86Base.IsSupported ? X86Base.CpuId(0xD, 0).Ebx : 576);

    internal int DeviceFd => deviceFd;

    internal int VcpuMmapSize { get; private set; }

    internal ulong GuestXcr0 { get; private set; } = 3;

    /// <summary>Whether syscalls stop in user mode at the syscall page (probed with the first machine; null before).</summary>
    internal bool? UserModeSyscalls { get; set; }

    /// <summary>Whether this platform's vCPUs take syscalls on the fast path (see the README); false until the first sandbox is created.</summary>
    public bool FastSyscalls => UserModeSyscalls == true;

    /// <inheritdoc/>
    /// <remarks>
    /// Opens the device, checks the API version and capabilities, and runs a throwaway VM's trampoline once
    /// on a separate thread with a deadline, so that a KVM that cannot run it fails here with a message
    /// rather than hanging a sandbox. Later calls return at once.
    /// </remarks>
    public void EnsureAvailable()
    {
        lock (gate)
        {
            ObjectDisposedException.ThrowIf(disposed, this);
            if (available)
            {
                return;
            }

            Open();
            Probe();
            available = true;
        }
    }

    /// <inheritdoc/>
    public IAddressSpace CreateAddressSpace(IMemoryFile memoryFile)
    {
        ArgumentNullException.ThrowIfNull(memoryFile);
        EnsureAvailable();
        lock (gate)
        {
            ObjectDisposedException.ThrowIf(disposed, this);
            if (!machines.TryGetValue(memoryFile, out var machine))
            {
                machine = new KvmMachine(this, memoryFile);
                machines.Add(memoryFile, machine);
            }

            machine.AddReference();
            try
            {
                return new KvmAddressSpace(this, machine);
            }
            catch
            {
                ReleaseMachine(machine);
                throw;
            }
        }
    }

    /// <inheritdoc/>
    /// <remarks>Takes a vCPU of the address space's VM (pooled); <c>Switch</c> may then be called from any one thread at a time.</remarks>
    public IExecutionContext CreateExecutionContext(IAddressSpace addressSpace)
    {
        if (addressSpace is not KvmAddressSpace space)
        {
            throw new ArgumentException("the address space was not created by the KVM platform", nameof(addressSpace));
        }

        ObjectDisposedException.ThrowIf(space.IsDisposed, space);
        return new KvmExecutionContext(this, space, space.Machine.AcquireVcpu());
    }

    /// <summary>Closes every VM and the device.</summary>
    public void Dispose()
    {
        KvmMachine[] all;
        lock (gate)
        {
            if (disposed)
            {
                return;
            }

            disposed = true;
            all = [.. machines.Values];
            machines.Clear();
        }

        foreach (var machine in all)
        {
            machine.Dispose();
        }

        if (deviceFd >= 0)
        {
            LibC.Close(deviceFd);
            deviceFd = -1;
        }
    }

    internal void Forget(KvmAddressSpace space) => ReleaseMachine(space.Machine);

    private void ReleaseMachine(KvmMachine machine)
    {
        bool last;
        lock (gate)
        {
            last = machine.Release();
            if (last)
            {
                machines.Remove(machine.MemoryFile);
            }
        }

        if (last)
        {
            machine.Dispose();
        }
    }

    /// <summary>Throws for a failed ioctl (negative result); returns the result otherwise.</summary>
    internal int Check(int result, string what)
    {
        if (result >= 0)
        {
            return result;
        }

        int errno = result == -1 ? LibC.Errno : -result;
        throw new InvalidOperationException($"{what} failed: {LibC.Describe(errno)}");
    }

    internal void SetCpuid(int vcpuFd)
    {
        int size = 8 + (cpuid.Length * sizeof(KvmCpuidEntry2));
        byte* buffer = stackalloc byte[size];
        *(uint*)buffer = (uint)cpuid.Length;
        *(uint*)(buffer + 4) = 0;
        fixed (KvmCpuidEntry2* entries = cpuid)
        {
            Buffer.MemoryCopy(entries, buffer + 8, size - 8, size - 8);
        }

        Check(LibC.IoctlRetry(vcpuFd, KvmAbi.SetCpuid2, (nint)buffer), "KVM_SET_CPUID2");
    }

    internal void SetMsrs(int vcpuFd, ReadOnlySpan<KvmMsrEntry> entries)
    {
        // One at a time, so that a refusal names the MSR.
        byte* buffer = stackalloc byte[8 + sizeof(KvmMsrEntry)];
        foreach (var entry in entries)
        {
            *(uint*)buffer = 1;
            *(uint*)(buffer + 4) = 0;
            *(KvmMsrEntry*)(buffer + 8) = entry;
            int written = Check(LibC.IoctlRetry(vcpuFd, KvmAbi.SetMsrs, (nint)buffer), "KVM_SET_MSRS");
            if (written != 1)
            {
                throw new InvalidOperationException($"KVM refused MSR 0x{entry.Index:x} = 0x{entry.Data:x}");
            }
        }
    }

    /// <summary>The XSAVE image KVM exchanges (KVM_GET_XSAVE2 size when larger than 4 KiB).</summary>
    internal int XsaveSize => xsaveSize;

    internal nuint GetXsaveRequest => xsaveSize > 4096 ? KvmAbi.GetXsave2 : KvmAbi.GetXsave;

    /// <summary>Puts a reused vCPU's FP/SSE/AVX state back to the initial configuration.</summary>
    internal void ResetExtendedState(KvmVcpu vcpu)
    {
        byte* image = stackalloc byte[xsaveSize];
        new Span<byte>(image, xsaveSize).Clear();
        *(ushort*)image = 0x37F;
        *(uint*)(image + 24) = 0x1F80;
        Check(LibC.IoctlRetry(vcpu.Fd, KvmAbi.SetXsave, (nint)image), "KVM_SET_XSAVE");
    }

    private void Open()
    {
        if (deviceFd >= 0)
        {
            return;
        }

        if (!OperatingSystem.IsLinux() || RuntimeInformation.ProcessArchitecture != Architecture.X64)
        {
            throw new PlatformUnavailableException("the KVM platform needs Linux on x86-64");
        }

        int fd = LibC.Open(devicePath, LibC.O_RDWR | LibC.O_CLOEXEC);
        if (fd < 0)
        {
            int errno = LibC.Errno;
            throw errno switch
            {
                LibC.ENOENT => new PlatformUnavailableException($"{devicePath} does not exist: KVM is not available on this machine (no kvm module loaded, or no virtualisation support)"),
                LibC.EACCES or LibC.EPERM => new PlatformUnavailableException($"no permission to open {devicePath}: run as root or join the group that owns it (usually 'kvm')"),
                _ => new PlatformUnavailableException($"cannot open {devicePath}: {LibC.Describe(errno)}"),
            };
        }

        try
        {
            int version = LibC.IoctlRetry(fd, KvmAbi.GetApiVersion, 0);
            if (version != KvmAbi.ApiVersion)
            {
                throw new PlatformUnavailableException(version < 0
                    ? $"{devicePath} is not a KVM device (KVM_GET_API_VERSION failed: {LibC.Describe(LibC.Errno)})"
                    : $"KVM API version {version} is not the supported version {KvmAbi.ApiVersion}");
            }

            foreach (var (cap, name) in new[] { (KvmAbi.CapUserMemory, "KVM_CAP_USER_MEMORY"), (KvmAbi.CapImmediateExit, "KVM_CAP_IMMEDIATE_EXIT"), (KvmAbi.CapXsave, "KVM_CAP_XSAVE"), (KvmAbi.CapXcrs, "KVM_CAP_XCRS") })
            {
                if (LibC.IoctlRetry(fd, KvmAbi.CheckExtension, cap) <= 0)
                {
                    throw new PlatformUnavailableException($"KVM lacks the capability {name}");
                }
            }

            int xsave2 = LibC.IoctlRetry(fd, KvmAbi.CheckExtension, KvmAbi.CapXsave2);
            xsaveSize = Math.Max(4096, xsave2);
            VcpuMmapSize = LibC.IoctlRetry(fd, KvmAbi.GetVcpuMmapSize, 0);
            if (VcpuMmapSize <= 0)
            {
                throw new PlatformUnavailableException($"KVM_GET_VCPU_MMAP_SIZE failed: {LibC.Describe(LibC.Errno)}");
            }

            cpuid = ReadSupportedCpuid(fd);
            foreach (var entry in cpuid)
            {
                if (entry.Function == 0xD && entry.Index == 0)
                {
                    GuestXcr0 = entry.Eax | ((ulong)entry.Edx << 32);
                }
            }

            KickSignal.Install();
            deviceFd = fd;
        }
        catch
        {
            LibC.Close(fd);
            throw;
        }
    }

    private static KvmCpuidEntry2[] ReadSupportedCpuid(int fd)
    {
        for (int count = 128; count <= 4096; count *= 2)
        {
            var buffer = new byte[8 + (count * sizeof(KvmCpuidEntry2))];
            fixed (byte* p = buffer)
            {
                *(uint*)p = (uint)count;
                if (LibC.IoctlRetry(fd, KvmAbi.GetSupportedCpuid, (nint)p) < 0)
                {
                    int errno = LibC.Errno;
                    if (errno == 7) // E2BIG: more entries than room
                    {
                        continue;
                    }

                    throw new PlatformUnavailableException($"KVM_GET_SUPPORTED_CPUID failed: {LibC.Describe(errno)}");
                }

                int n = (int)*(uint*)p;
                var entries = new KvmCpuidEntry2[n];
                fixed (KvmCpuidEntry2* e = entries)
                {
                    Buffer.MemoryCopy(p + 8, e, n * sizeof(KvmCpuidEntry2), n * sizeof(KvmCpuidEntry2));
                }

                return entries;
            }
        }

        throw new PlatformUnavailableException("KVM_GET_SUPPORTED_CPUID reports too many entries");
    }

    /// <summary>Creates a VM and a vCPU and has the trampoline do one round of work, on a thread with a deadline.</summary>
    private void Probe()
    {
        Exception? failure = null;
        var thread = new Thread(() =>
        {
            try
            {
                using var machine = new KvmMachine(this, new ProbeMemoryFile());
                var touches = new TouchList();
                touches.Add(GuestLayout.VirtualOf(GuestLayout.KernelRootOffset) + (8 * GuestLayout.SupervisorPml4Index));
                machine.Touch(touches);
            }
            catch (Exception e)
            {
                failure = e;
            }
        })
        {
            IsBackground = true,
            Name = "appkernel kvm probe",
        };
        thread.Start();
        if (!thread.Join(ProbeTimeout))
        {
            throw new PlatformUnavailableException($"a KVM test guest did not stop within {ProbeTimeout.TotalSeconds:0} s; KVM on this machine cannot run the platform's trampoline");
        }

        if (failure is PlatformUnavailableException)
        {
            throw failure;
        }

        if (failure is not null)
        {
            throw new PlatformUnavailableException($"a KVM test guest failed: {failure.Message}", failure);
        }
    }

    /// <summary>A memory file stand-in for the probe, which maps no program memory.</summary>
    private sealed class ProbeMemoryFile : IMemoryFile
    {
        public int FileDescriptor => -1;

        public int PageSize => 4096;

        public long AllocatedBytes => 0;

        public long ResidentBytes => 0;

        public nint BaseAddress => 0;

        public long Allocate(long length) => throw new NotSupportedException();

        public void IncRef(long offset, long length) => throw new NotSupportedException();

        public void DecRef(long offset, long length) => throw new NotSupportedException();

        public int RefCount(long offset) => 0;

        public Span<byte> GetSpan(long offset, int length) => throw new NotSupportedException();

        public void Dispose()
        {
        }
    }
}
