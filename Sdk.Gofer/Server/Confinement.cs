using System.Text;
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

    /// <summary>
    /// Capabilities the Gofer keeps (when root): change owners of what it creates (CHOWN), reach
    /// and change any file beneath its roots as the host's root could (DAC_OVERRIDE,
    /// DAC_READ_SEARCH, FOWNER for chmod/utimes/links of files it does not own, FSETID so
    /// chmod/chown keep the set-group-ID bit of directories). Everything else — SYS_ADMIN,
    /// SYS_PTRACE, SETUID, NET_*, MKNOD, SETPCAP, ... — goes, bounding set included.
    /// </summary>
    internal static readonly int[] KeptCapabilities = [0 /* CHOWN */, 1 /* DAC_OVERRIDE */, 2 /* DAC_READ_SEARCH */, 3 /* FOWNER */, 4 /* FSETID */];

    /// <summary>Where the new root is built before pivot_root (in the Gofer's own mount namespace, so nothing is hidden on the host).</summary>
    private const string Staging = "/tmp";

    private const string Urandom = "/dev/urandom";

    /// <summary>
    /// Moves the calling thread into a mount namespace of its own whose root is a small read-only
    /// tmpfs holding only <paramref name="visible"/> (bind-mounted read-only, nosuid, nodev, at
    /// their own paths): unshare(CLONE_NEWNS), make every mount private, mount the tmpfs on
    /// <see cref="Staging"/>, bind the directories, pivot_root into it, detach the old root,
    /// chdir("/"). The attach roots must be opened before: descriptors keep them reachable.
    /// Namespaces and roots belong to threads: threads started afterwards from this thread share
    /// its root (CLONE_FS) and namespace; the runtime's earlier threads keep the host's.
    /// </summary>
    /// <param name="visible">Host directories the process still needs (the runtime's framework and the Gofer's own directory).</param>
    /// <param name="failure">The failed step, when the result is not 0.</param>
    /// <returns>0, or the errno (EPERM when not root, without doing anything).</returns>
    public static int EnterPrivateRoot(string[] visible, out string? failure)
    {
        failure = null;
        if (Host.GetEffectiveUid() != 0)
        {
            failure = "not root";
            return Host.EPERM;
        }

        if (Host.Unshare(Host.CLONE_NEWNS) != 0)
        {
            failure = "unshare(CLONE_NEWNS)";
            return Host.Errno;
        }

        if (Mount(null, "/", null, Host.MS_REC | Host.MS_PRIVATE, null) != 0)
        {
            return Failed("make / private", out failure);
        }

        // Descriptors of the directories to keep, opened in the new namespace (a bind mount's
        // source must belong to it) and before the tmpfs could hide them (they may lie under it).
        var fds = new int[visible.Length];
        for (int i = 0; i < visible.Length; i++)
        {
            fds[i] = Open(visible[i], Host.O_PATH | Host.O_DIRECTORY | Host.O_CLOEXEC);
            if (fds[i] < 0)
            {
                return Failed($"open {visible[i]}", out failure);
            }
        }

        // The runtime seeds its string hashing from /dev/urandom on first use (after start-up).
        int urandom = Open(Urandom, Host.O_PATH | Host.O_CLOEXEC);

        try
        {
            if (Mount("tmpfs", Staging, "tmpfs", Host.MS_NOSUID | Host.MS_NODEV | Host.MS_NOEXEC, "size=64k,nr_inodes=256,mode=0755") != 0)
            {
                return Failed($"mount tmpfs on {Staging}", out failure);
            }

            for (int i = 0; i < visible.Length; i++)
            {
                string target = Staging + visible[i];
                if (MakeDirectories(target) != 0)
                {
                    return Failed($"mkdir {visible[i]}", out failure);
                }

                string source = FdPath(fds[i]);
                if (Mount(source, target, null, Host.MS_BIND, null) != 0)
                {
                    return Failed($"bind {visible[i]}", out failure);
                }

                if (Mount(null, target, null, Host.MS_BIND | Host.MS_REMOUNT | Host.MS_RDONLY | Host.MS_NOSUID | Host.MS_NODEV, null) != 0)
                {
                    return Failed($"remount {visible[i]} read-only", out failure);
                }
            }

            if (urandom >= 0)
            {
                // A character device, so this one bind mount keeps dev (read-only, nosuid, noexec).
                string target = Staging + Urandom;
                int file = MakeDirectories(Staging + "/dev") == 0 ? Open(target, Host.O_CREAT | Host.O_WRONLY | Host.O_CLOEXEC) : -1;
                Host.CloseQuietly(file);
                string source = FdPath(urandom);
                if (file < 0 || Mount(source, target, null, Host.MS_BIND, null) != 0 ||
                    Mount(null, target, null, Host.MS_BIND | Host.MS_REMOUNT | Host.MS_RDONLY | Host.MS_NOSUID | Host.MS_NOEXEC, null) != 0)
                {
                    return Failed($"bind {Urandom}", out failure);
                }
            }
        }
        finally
        {
            foreach (int fd in fds)
            {
                Host.CloseQuietly(fd);
            }

            Host.CloseQuietly(urandom);
        }

        // pivot_root(".", "."): the old root ends up stacked on the new one, then detached.
        if (Chdir(Staging) != 0)
        {
            return Failed("chdir", out failure);
        }

        byte* dot = stackalloc byte[] { (byte)'.', 0 };
        if (Host.PivotRoot(dot, dot) != 0)
        {
            return Failed("pivot_root", out failure);
        }

        if (Host.Umount2(dot, Host.MNT_DETACH) != 0)
        {
            return Failed("detach the old root", out failure);
        }

        if (Chdir("/") != 0)
        {
            return Failed("chdir /", out failure);
        }

        if (Mount(null, "/", null, Host.MS_BIND | Host.MS_REMOUNT | Host.MS_RDONLY | Host.MS_NOSUID | Host.MS_NODEV | Host.MS_NOEXEC, null) != 0)
        {
            return Failed("remount / read-only", out failure);
        }

        return 0;
    }

    /// <summary>
    /// Drops every capability but <see cref="KeptCapabilities"/> from the calling thread's
    /// bounding, effective, permitted, inheritable and ambient sets. Capabilities belong to
    /// threads: threads started afterwards from this one inherit the reduced sets, the runtime's
    /// earlier threads keep theirs (the seccomp filter denies capset, setuid and friends to all).
    /// </summary>
    /// <param name="boundingKept">True when the bounding set could not be reduced (no CAP_SETPCAP, as in some containers).</param>
    /// <returns>0, or the errno (EPERM when not root, without doing anything).</returns>
    public static int DropCapabilities(out bool boundingKept)
    {
        boundingKept = false;
        if (Host.GetEffectiveUid() != 0)
        {
            return Host.EPERM;
        }

        ulong keep = 0;
        foreach (int cap in KeptCapabilities)
        {
            keep |= 1UL << cap;
        }

        // The bounding set first (dropping from it needs CAP_SETPCAP, which goes last).
        for (int cap = 0; cap < 64; cap++)
        {
            if ((keep & (1UL << cap)) != 0)
            {
                continue;
            }

            if (Host.Prctl(Host.PR_CAPBSET_DROP, (ulong)cap, 0, 0, 0) != 0)
            {
                int errno = Host.Errno;
                if (errno == (int)Errno.EINVAL)
                {
                    break; // past the kernel's last capability
                }

                boundingKept = true; // EPERM: no CAP_SETPCAP; the other sets still go
                break;
            }
        }

        // Ambient capabilities may be unsupported (EINVAL); they are empty for root anyway.
        Host.Prctl(Host.PR_CAP_AMBIENT, Host.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);

        // Never ask for a capability the thread does not hold (capset would refuse).
        Host.CapData* data = stackalloc Host.CapData[2];
        if (Host.CapGet(data) != 0)
        {
            return Host.Errno;
        }

        ulong permitted = (data[0].Permitted | ((ulong)data[1].Permitted << 32)) & keep;
        data[0] = new Host.CapData { Effective = (uint)permitted, Permitted = (uint)permitted, Inheritable = 0 };
        data[1] = new Host.CapData { Effective = (uint)(permitted >> 32), Permitted = (uint)(permitted >> 32), Inheritable = 0 };
        return Host.CapSet(data) == 0 ? 0 : Host.Errno;
    }

    /// <summary>The calling thread's effective and bounding capability sets (bit n = capability n).</summary>
    internal static (ulong Effective, ulong Bounding) ReadCapabilities()
    {
        Host.CapData* data = stackalloc Host.CapData[2];
        ulong effective = Host.CapGet(data) == 0 ? data[0].Effective | ((ulong)data[1].Effective << 32) : ulong.MaxValue;
        ulong bounding = 0;
        for (int cap = 0; cap < 64; cap++)
        {
            int result = Host.Prctl(Host.PR_CAPBSET_READ, (ulong)cap, 0, 0, 0);
            if (result < 0)
            {
                break;
            }

            bounding |= (ulong)result << cap;
        }

        return (effective, bounding);
    }

    /// <summary>
    /// The directories the runtime may still load files from after start-up: those of the trusted
    /// platform assemblies (the shared framework, the Gofer's own directory) and of native
    /// libraries, without duplicates or directories inside another one of the list.
    /// </summary>
    internal static string[] RuntimeDirectories()
    {
        var found = new List<string>();
        foreach (string key in (string[])["TRUSTED_PLATFORM_ASSEMBLIES", "NATIVE_DLL_SEARCH_DIRECTORIES"])
        {
            if (AppContext.GetData(key) is not string list)
            {
                continue;
            }

            foreach (string entry in list.Split(':', StringSplitOptions.RemoveEmptyEntries))
            {
                string directory = key[0] == 'T' ? Path.GetDirectoryName(entry) ?? string.Empty : entry.TrimEnd('/');
                if (directory.Length > 1 && directory[0] == '/' && !found.Contains(directory))
                {
                    found.Add(directory);
                }
            }
        }

        string baseDirectory = AppContext.BaseDirectory.TrimEnd('/');
        if (baseDirectory.Length > 1 && !found.Contains(baseDirectory))
        {
            found.Add(baseDirectory);
        }

        var result = new List<string>();
        foreach (string candidate in found)
        {
            bool inside = false;
            foreach (string other in found)
            {
                if (other != candidate && candidate.StartsWith(other + "/", StringComparison.Ordinal))
                {
                    inside = true;
                    break;
                }
            }

            if (!inside)
            {
                result.Add(candidate);
            }
        }

        return result.ToArray();
    }

    /// <summary>"/proc/self/fd/N" (no culture data to load at start-up).</summary>
    private static string FdPath(int fd)
    {
        Span<char> digits = stackalloc char[10];
        int at = digits.Length;
        do
        {
            digits[--at] = (char)('0' + (fd % 10));
            fd /= 10;
        }
        while (fd > 0);

        return string.Concat("/proc/self/fd/", digits[at..]);
    }

    private static int Failed(string step, out string failure)
    {
        int errno = Host.Errno;
        failure = step;
        return errno == 0 ? Host.EPERM : errno;
    }

    private static int MakeDirectories(string path)
    {
        for (int i = 1; i <= path.Length; i++)
        {
            if (i == path.Length || path[i] == '/')
            {
                fixed (byte* p = Z(path[..i]))
                {
                    if (Host.MkdirAt(Host.AT_FDCWD, p, 0x1ed) != 0 && Host.Errno != (int)Errno.EEXIST)
                    {
                        return Host.Errno;
                    }
                }
            }
        }

        return 0;
    }

    private static int Mount(string? source, string target, string? type, ulong flags, string? data)
    {
        fixed (byte* s = Z(source), t = Z(target), y = Z(type), d = Z(data))
        {
            return Host.Mount(s, t, y, flags, d);
        }
    }

    private static int Open(string path, int flags)
    {
        fixed (byte* p = Z(path))
        {
            return Host.Open(p, flags, 0x1a4);
        }
    }

    private static int Chdir(string path)
    {
        fixed (byte* p = Z(path))
        {
            return Host.Chdir(p);
        }
    }

    /// <summary>NUL-terminated UTF-8, or null.</summary>
    private static byte[]? Z(string? text)
    {
        if (text is null)
        {
            return null;
        }

        var bytes = new byte[Encoding.UTF8.GetByteCount(text) + 1];
        Encoding.UTF8.GetBytes(text, bytes);
        return bytes;
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
