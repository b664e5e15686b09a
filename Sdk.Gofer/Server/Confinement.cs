using AppKernel.Gofer.Native;

namespace AppKernel.Gofer.Server;

/// <summary>
/// What the Gofer does to itself after start-up so that, even if it were subverted, it could do
/// little beyond serving the files beneath its attach roots.
/// </summary>
internal static unsafe class Confinement
{
    // seccomp(2) and classic BPF constants.
    private const uint SECCOMP_SET_MODE_FILTER = 1, SECCOMP_FILTER_FLAG_TSYNC = 1;
    private const uint RET_KILL_PROCESS = 0x80000000, RET_ERRNO = 0x00050000, RET_ALLOW = 0x7fff0000;
    private const uint AUDIT_ARCH_X86_64 = 0xC000003E;
    private const ushort LD_W_ABS = 0x20, JEQ_K = 0x15, JGE_K = 0x35, JSET_K = 0x45, AND_K = 0x54, RET_K = 0x06;
    private const uint OffsetNr = 0, OffsetArch = 4, OffsetArg0 = 16, OffsetArg2 = 32;
    private const uint X32SyscallBit = 0x40000000;

    // Syscalls whose arguments are inspected.
    private const uint NrSocket = 41, NrSocketPair = 53, NrClone = 56, NrClone3 = 435, NrMknodAt = 259;

    /// <summary>Namespace-creating clone flags a file proxy never uses.</summary>
    private const uint CloneNamespaceFlags =
        0x00020000 /* NEWNS */ | 0x02000000 /* NEWCGROUP */ | 0x04000000 /* NEWUTS */ | 0x08000000 /* NEWIPC */ |
        0x10000000 /* NEWUSER */ | 0x20000000 /* NEWPID */ | 0x40000000 /* NEWNET */ | 0x00000080 /* NEWTIME */;

    /// <summary>
    /// Syscalls a file proxy never needs, denied with EPERM. A deny-list rather than an
    /// allow-list: the .NET runtime makes many syscalls of its own (threads, GC, signals).
    /// </summary>
    internal static readonly (uint Number, string Name)[] Denied =
    [
        (42, "connect"), (43, "accept"), (288, "accept4"), (49, "bind"), (50, "listen"),
        (59, "execve"), (322, "execveat"), (57, "fork"), (58, "vfork"),
        (101, "ptrace"), (310, "process_vm_readv"), (311, "process_vm_writev"), (312, "kcmp"), (438, "pidfd_getfd"),
        (165, "mount"), (166, "umount2"), (155, "pivot_root"), (161, "chroot"), (272, "unshare"), (308, "setns"),
        (428, "open_tree"), (429, "move_mount"), (430, "fsopen"), (431, "fsconfig"), (432, "fsmount"), (433, "fspick"),
        (442, "mount_setattr"), (457, "statmount"), (458, "listmount"),
        (246, "kexec_load"), (320, "kexec_file_load"), (169, "reboot"),
        (175, "init_module"), (313, "finit_module"), (176, "delete_module"),
        (321, "bpf"), (298, "perf_event_open"), (323, "userfaultfd"),
        (250, "keyctl"), (248, "add_key"), (249, "request_key"),
        (303, "name_to_handle_at"), (304, "open_by_handle_at"),
        (425, "io_uring_setup"), (426, "io_uring_enter"), (427, "io_uring_register"),
        (172, "iopl"), (173, "ioperm"), (167, "swapon"), (168, "swapoff"),
        (164, "settimeofday"), (227, "clock_settime"), (159, "adjtimex"), (305, "clock_adjtime"),
        (163, "acct"), (179, "quotactl"), (443, "quotactl_fd"), (103, "syslog"), (153, "vhangup"),
        (135, "personality"), (134, "uselib"), (139, "sysfs"), (156, "_sysctl"), (212, "lookup_dcookie"),
        (133, "mknod"),
        (105, "setuid"), (106, "setgid"), (113, "setreuid"), (114, "setregid"), (117, "setresuid"),
        (119, "setresgid"), (116, "setgroups"), (122, "setfsuid"), (123, "setfsgid"), (126, "capset"),
    ];

    /// <summary>
    /// Installs the seccomp filter on every thread of the process (TSYNC), after setting
    /// no_new_privs. Checks the architecture (anything but x86-64, including the i386
    /// int 0x80 entry, kills the process), refuses the x32 ABI, allows socket/socketpair only
    /// for AF_UNIX, refuses namespace-creating clone flags, answers clone3 with ENOSYS (so libc
    /// falls back to clone, whose flags can be inspected), allows mknodat only for FIFOs,
    /// sockets and regular files, and denies the <see cref="Denied"/> list.
    /// </summary>
    /// <returns>0, or the errno of the failure.</returns>
    public static int InstallSeccomp()
    {
        var program = BuildFilter();
        if (Host.Prctl(Host.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        {
            return Host.Errno;
        }

        fixed (Host.SockFilter* filter = program)
        {
            Host.SockFprog fprog = new() { Length = (ushort)program.Length, Filter = filter };
            long result = Host.Seccomp(SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &fprog);
            if (result < 0)
            {
                return Host.Errno;
            }

            // With TSYNC a positive result is the id of a thread that could not be synchronized.
            return result == 0 ? 0 : Host.EAGAIN;
        }
    }

    /// <summary>The filter program (exposed for tests).</summary>
    internal static Host.SockFilter[] BuildFilter()
    {
        // Written with plain arrays and integer labels: this runs at start-up, where every
        // generic instantiation over a struct costs JIT time.
        var asm = new BpfAssembler(Denied.Length + 32);
        asm.Load(OffsetArch);
        asm.JumpIfEqual(AUDIT_ARCH_X86_64, None, Kill);
        asm.Load(OffsetNr);
        asm.JumpIfGreaterOrEqual(X32SyscallBit, Enosys, None);
        asm.JumpIfEqual(NrSocket, Socket, None);
        asm.JumpIfEqual(NrSocketPair, Socket, None);
        asm.JumpIfEqual(NrClone, Clone, None);
        asm.JumpIfEqual(NrClone3, Enosys, None);
        asm.JumpIfEqual(NrMknodAt, MknodAt, None);
        foreach (var (number, _) in Denied)
        {
            asm.JumpIfEqual(number, Eperm, None);
        }

        asm.Return(RET_ALLOW);

        asm.Label(Socket);
        asm.Load(OffsetArg0);
        asm.JumpIfEqual(Host.AF_UNIX, Allow, Eafnosupport);

        asm.Label(Clone);
        asm.Load(OffsetArg0);
        asm.JumpIfAnySet(CloneNamespaceFlags, Eperm, Allow);

        asm.Label(MknodAt);
        asm.Load(OffsetArg2);
        asm.And(Host.S_IFMT);
        asm.JumpIfEqual(Host.S_IFIFO, Allow, None);
        asm.JumpIfEqual(Host.S_IFSOCK, Allow, None);
        asm.JumpIfEqual(Host.S_IFREG, Allow, None);
        asm.JumpIfEqual(0, Allow, Eperm);

        asm.Label(Allow);
        asm.Return(RET_ALLOW);
        asm.Label(Eperm);
        asm.Return(RET_ERRNO | (uint)Errno.EPERM);
        asm.Label(Enosys);
        asm.Return(RET_ERRNO | (uint)Errno.ENOSYS);
        asm.Label(Eafnosupport);
        asm.Return(RET_ERRNO | (uint)Errno.EAFNOSUPPORT);
        asm.Label(Kill);
        asm.Return(RET_KILL_PROCESS);
        return asm.Assemble();
    }

    // Labels of the filter program.
    private const int None = -1, Socket = 0, Clone = 1, MknodAt = 2, Allow = 3, Eperm = 4, Enosys = 5, Eafnosupport = 6, Kill = 7, LabelCount = 8;

    /// <summary>
    /// Moves the calling thread into a new, empty network namespace (when privileged).
    /// Namespaces belong to threads: threads the runtime created before this call keep the host's
    /// network namespace; threads started afterwards from this thread (the Gofer's serving
    /// threads) inherit the new one. The seccomp filter is what denies networking to all threads.
    /// </summary>
    /// <returns>0, or the errno (EPERM when unprivileged).</returns>
    public static int UnshareNetwork()
    {
        if (Host.GetEffectiveUid() != 0)
        {
            return Host.EPERM;
        }

        return Host.Unshare(Host.CLONE_NEWNET) == 0 ? 0 : Host.Errno;
    }

    /// <summary>A tiny classic-BPF assembler with forward labels (jumps are 8-bit and only go forward).</summary>
    private sealed class BpfAssembler(int capacity)
    {
        private readonly Host.SockFilter[] code = new Host.SockFilter[capacity];
        private readonly int[] jumpTrue = new int[capacity];
        private readonly int[] jumpFalse = new int[capacity];
        private readonly int[] labels = new int[LabelCount];
        private int count;

        public void Load(uint offset) => Emit(LD_W_ABS, offset, None, None);

        public void And(uint mask) => Emit(AND_K, mask, None, None);

        public void JumpIfEqual(uint value, int whenTrue, int whenFalse) => Emit(JEQ_K, value, whenTrue, whenFalse);

        public void JumpIfGreaterOrEqual(uint value, int whenTrue, int whenFalse) => Emit(JGE_K, value, whenTrue, whenFalse);

        public void JumpIfAnySet(uint mask, int whenTrue, int whenFalse) => Emit(JSET_K, mask, whenTrue, whenFalse);

        public void Return(uint action) => Emit(RET_K, action, None, None);

        public void Label(int label) => labels[label] = count;

        public Host.SockFilter[] Assemble()
        {
            var program = new Host.SockFilter[count];
            for (int i = 0; i < count; i++)
            {
                program[i] = code[i];
                program[i].JumpTrue = Offset(i, jumpTrue[i]);
                program[i].JumpFalse = Offset(i, jumpFalse[i]);
            }

            return program;
        }

        private byte Offset(int from, int label)
        {
            if (label == None)
            {
                return 0;
            }

            int distance = labels[label] - from - 1;
            if (distance is < 0 or > 255)
            {
                throw new InvalidOperationException($"BPF jump to label {label} out of range");
            }

            return (byte)distance;
        }

        private void Emit(ushort opcode, uint k, int whenTrue, int whenFalse)
        {
            code[count] = new Host.SockFilter { Code = opcode, K = k };
            jumpTrue[count] = whenTrue;
            jumpFalse[count] = whenFalse;
            count++;
        }
    }
}
