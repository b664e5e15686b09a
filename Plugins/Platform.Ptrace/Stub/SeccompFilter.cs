using System.Buffers.Binary;

namespace AppKernel.Platform.Ptrace.Stub;

/// <summary>
/// The stub's seccomp filter: a classic BPF program keyed on where a syscall comes from. From the
/// injection gadget, only the calls the platform injects; from the park loop, only pause(); from
/// the end of the setup, only close_range(1, ...); from the setup-failure exit, only exit_group.
/// A wrong call from one of those sites kills the stub process. A call from anywhere else is
/// refused with SIGSYS (SECCOMP_RET_TRAP: never executed), which the tracer turns into a fault:
/// the only such calls are the host's vsyscall emulation (a program calling the [vsyscall] page,
/// which seccomp sees but ptrace does not). Program syscalls never reach the filter: under
/// PTRACE_SYSEMU the syscall-entry stop happens and the call is skipped before seccomp runs.
/// </summary>
internal static class SeccompFilter
{
    // Classic BPF opcodes.
    private const ushort LoadWordAbsolute = 0x20;   // BPF_LD | BPF_W | BPF_ABS
    private const ushort JumpIfEqual = 0x15;        // BPF_JMP | BPF_JEQ | BPF_K
    private const ushort Return = 0x06;             // BPF_RET | BPF_K

    // struct seccomp_data offsets.
    private const uint OffsetNr = 0, OffsetArch = 4, OffsetIpLow = 8, OffsetIpHigh = 12, OffsetArgs = 16;

    private const uint AuditArchX86_64 = 0xC000003E;
    private const uint RetAllow = 0x7fff0000, RetKillProcess = 0x80000000, RetTrap = 0x00030000;

    /// <summary>The host syscalls the platform injects.</summary>
    public const int SysMmap = 9, SysMprotect = 10, SysMunmap = 11, SysClone = 56, SysExit = 60;

    /// <summary>The stub's own syscalls after the filter is in place.</summary>
    public const int SysPause = 34, SysExitGroup = 231, SysCloseRange = 436;

    /// <summary>The only mmap flags allowed: a shared fixed mapping of the memory file.</summary>
    public const uint MmapFlags = 0x01 | 0x10; // MAP_SHARED | MAP_FIXED

    /// <summary>The only clone flags allowed: a thread in the stub's own process.</summary>
    public const uint CloneFlags =
        0x100 | 0x200 | 0x400 | 0x800 | 0x10000 | 0x40000; // CLONE_VM|FS|FILES|SIGHAND|THREAD|SYSVSEM

    /// <summary>Builds the filter as the bytes of a <c>struct sock_filter</c> array.</summary>
    public static byte[] Build(StubSites sites)
    {
        uint high = (uint)(sites.GadgetReturn >> 32);
        if (sites != default &&
            ((sites.ParkReturn >> 32) != high || (sites.CloseReturn >> 32) != high || (sites.ExitReturn >> 32) != high))
        {
            throw new ArgumentException("the stub's syscall sites must share the high half of their address", nameof(sites));
        }

        var p = new Program();

        // Only x86-64 syscalls (no x32 or i386 entry points).
        p.Load(OffsetArch);
        p.JumpUnless(AuditArchX86_64, "kill");

        // Dispatch on the call site (seccomp sees the address after the syscall instruction).
        p.Load(OffsetIpHigh);
        p.JumpUnless(high, "trap");
        p.Load(OffsetIpLow);
        p.JumpIf((uint)sites.ParkReturn, "park");
        p.JumpIf((uint)sites.CloseReturn, "close");
        p.JumpIf((uint)sites.ExitReturn, "exit");
        p.JumpUnless((uint)sites.GadgetReturn, "trap");

        // From the gadget: only the injected calls.
        p.Load(OffsetNr);
        p.JumpIf(SysMmap, "mmap");
        p.JumpIf(SysMunmap, "allow");
        p.JumpIf(SysMprotect, "allow");
        p.JumpIf(SysClone, "clone");
        p.JumpIf(SysExit, "allow");
        p.Ret(RetKillProcess);

        // mmap: only the memory file, only MAP_SHARED | MAP_FIXED.
        p.Label("mmap");
        p.Load(OffsetArgs + (4 * 8));
        p.JumpUnless(StubLayout.MemoryFileDescriptor, "kill");
        p.Load(OffsetArgs + (3 * 8));
        p.JumpUnless(MmapFlags, "kill");
        p.Ret(RetAllow);

        // clone: only a thread of this process.
        p.Label("clone");
        p.Load(OffsetArgs);
        p.JumpUnless(CloneFlags, "kill");
        p.Ret(RetAllow);

        // From the park loop: only pause().
        p.Label("park");
        p.Load(OffsetNr);
        p.JumpUnless(SysPause, "kill");
        p.Ret(RetAllow);

        // From the end of the setup: only close_range from fd 1 up.
        p.Label("close");
        p.Load(OffsetNr);
        p.JumpUnless(SysCloseRange, "kill");
        p.Load(OffsetArgs);
        p.JumpUnless(1, "kill");
        p.Ret(RetAllow);

        // From the setup-failure exit: only exit_group.
        p.Label("exit");
        p.Load(OffsetNr);
        p.JumpUnless(SysExitGroup, "kill");
        p.Ret(RetAllow);

        p.Label("trap");
        p.Ret(RetTrap);
        p.Label("allow");
        p.Ret(RetAllow);
        p.Label("kill");
        p.Ret(RetKillProcess);
        return p.Encode();
    }

    /// <summary>A tiny BPF assembler with forward labels.</summary>
    private sealed class Program
    {
        private readonly List<(ushort Code, string? True, string? False, uint K)> instructions = [];
        private readonly Dictionary<string, int> labels = [];

        public void Load(uint offset) => instructions.Add((LoadWordAbsolute, null, null, offset));

        public void JumpIf(uint value, string target) => instructions.Add((JumpIfEqual, target, null, value));

        public void JumpUnless(uint value, string target) => instructions.Add((JumpIfEqual, null, target, value));

        public void Ret(uint action) => instructions.Add((Return, null, null, action));

        public void Label(string name) => labels[name] = instructions.Count;

        public byte[] Encode()
        {
            var bytes = new byte[instructions.Count * 8];
            for (int i = 0; i < instructions.Count; i++)
            {
                var (code, onTrue, onFalse, k) = instructions[i];
                var slot = bytes.AsSpan(i * 8, 8);
                BinaryPrimitives.WriteUInt16LittleEndian(slot, code);
                slot[2] = Offset(i, onTrue);
                slot[3] = Offset(i, onFalse);
                BinaryPrimitives.WriteUInt32LittleEndian(slot[4..], k);
            }

            return bytes;
        }

        private byte Offset(int from, string? label)
        {
            if (label is null)
            {
                return 0; // fall through
            }

            int distance = labels[label] - (from + 1);
            if (distance is < 0 or > 255)
            {
                throw new InvalidOperationException($"BPF jump to {label} out of range");
            }

            return (byte)distance;
        }
    }
}
