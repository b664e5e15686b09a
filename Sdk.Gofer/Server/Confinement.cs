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
    private const ushort LD_W_ABS = 0x20, JA = 0x05, JEQ_K = 0x15, JGE_K = 0x35, JSET_K = 0x45, AND_K = 0x54, RET_K = 0x06;
    private const uint OffsetNr = 0, OffsetArch = 4, OffsetArg0 = 16, OffsetArg2 = 32;
    private const uint X32SyscallBit = 0x40000000;

    // Syscalls whose arguments are inspected.
    private const uint NrSocket = 41, NrSocketPair = 53, NrClone = 56, NrClone3 = 435, NrMknodAt = 259,
        NrTgkill = 234, NrPrlimit64 = 302, NrIoctl = 16;

    /// <summary>Namespace-creating clone flags a file proxy never uses.</summary>
    private const uint CloneNamespaceFlags =
        0x00020000 /* NEWNS */ | 0x02000000 /* NEWCGROUP */ | 0x04000000 /* NEWUTS */ | 0x08000000 /* NEWIPC */ |
        0x10000000 /* NEWUSER */ | 0x20000000 /* NEWPID */ | 0x40000000 /* NEWNET */ | 0x00000080 /* NEWTIME */;

    /// <summary>
    /// Syscalls a file proxy must never make, refused with EPERM (anything else not in
    /// <see cref="Allowed"/> gets ENOSYS). Kept as a list of its own so that the refusal of the
    /// dangerous ones is explicit and probed by SelfCheck.
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
    /// Every syscall the Gofer may make once confined: its protocol (descriptor-relative file
    /// operations, AF_UNIX messages with descriptors) and what the .NET runtime does on its own
    /// (memory, threads, futexes, signals, timers, scheduling queries). Taken from strace of the
    /// Gofer under file-heavy workloads, plus the runtime's other read-only queries. The most
    /// frequent come first: the filter tests them in order. Path-based calls that resolve from
    /// the current directory (open, mkdir, rename, ...) are left out: the protocol only uses the
    /// *at forms. socket, socketpair, clone, mknodat, tgkill, prlimit64 and ioctl are checked
    /// separately.
    /// </summary>
    internal static readonly uint[] Allowed =
    [
        202 /* futex */, 47 /* recvmsg */, 46 /* sendmsg */, 437 /* openat2 */, 332 /* statx */, 3 /* close */,
        217 /* getdents64 */, 267 /* readlinkat */, 262 /* newfstatat */, 5 /* fstat */, 8 /* lseek */, 257 /* openat */,
        0 /* read */, 1 /* write */, 17 /* pread64 */, 18 /* pwrite64 */, 19 /* readv */, 20 /* writev */,
        295 /* preadv */, 296 /* pwritev */, 327 /* preadv2 */, 328 /* pwritev2 */,
        258 /* mkdirat */, 263 /* unlinkat */, 264 /* renameat */, 316 /* renameat2 */, 265 /* linkat */, 266 /* symlinkat */,
        260 /* fchownat */, 268 /* fchmodat */, 452 /* fchmodat2 */, 280 /* utimensat */, 269 /* faccessat */, 439 /* faccessat2 */,
        77 /* ftruncate */, 285 /* fallocate */, 74 /* fsync */, 75 /* fdatasync */, 306 /* syncfs */, 277 /* sync_file_range */,
        221 /* fadvise64 */, 137 /* statfs */, 138 /* fstatfs */, 72 /* fcntl */, 32 /* dup */, 33 /* dup2 */, 292 /* dup3 */,
        436 /* close_range */, 293 /* pipe2 */, 22 /* pipe */, 290 /* eventfd2 */, 319 /* memfd_create */,
        44 /* sendto */, 45 /* recvfrom */, 307 /* sendmmsg */, 299 /* recvmmsg */, 48 /* shutdown */,
        51 /* getsockname */, 52 /* getpeername */, 54 /* setsockopt */, 55 /* getsockopt */,
        7 /* poll */, 271 /* ppoll */, 23 /* select */, 270 /* pselect6 */,
        213 /* epoll_create */, 291 /* epoll_create1 */, 233 /* epoll_ctl */, 232 /* epoll_wait */, 281 /* epoll_pwait */, 441 /* epoll_pwait2 */,
        9 /* mmap */, 11 /* munmap */, 10 /* mprotect */, 28 /* madvise */, 25 /* mremap */, 12 /* brk */, 27 /* mincore */,
        26 /* msync */, 149 /* mlock */, 150 /* munlock */, 325 /* mlock2 */, 237 /* mbind */, 238 /* set_mempolicy */, 239 /* get_mempolicy */,
        324 /* membarrier */, 334 /* rseq */, 273 /* set_robust_list */, 274 /* get_robust_list */, 218 /* set_tid_address */,
        158 /* arch_prctl */, 157 /* prctl */, 60 /* exit */, 231 /* exit_group */, 219 /* restart_syscall */,
        13 /* rt_sigaction */, 14 /* rt_sigprocmask */, 15 /* rt_sigreturn */, 127 /* rt_sigpending */, 128 /* rt_sigtimedwait */,
        130 /* rt_sigsuspend */, 131 /* sigaltstack */, 282 /* signalfd */, 289 /* signalfd4 */,
        24 /* sched_yield */, 142 /* sched_setparam */, 143 /* sched_getparam */, 144 /* sched_setscheduler */, 145 /* sched_getscheduler */,
        146 /* sched_get_priority_max */, 147 /* sched_get_priority_min */, 148 /* sched_rr_get_interval */,
        203 /* sched_setaffinity */, 204 /* sched_getaffinity */, 314 /* sched_setattr */, 315 /* sched_getattr */,
        140 /* getpriority */, 141 /* setpriority */, 309 /* getcpu */,
        228 /* clock_gettime */, 229 /* clock_getres */, 230 /* clock_nanosleep */, 35 /* nanosleep */, 96 /* gettimeofday */, 201 /* time */,
        283 /* timerfd_create */, 286 /* timerfd_settime */, 287 /* timerfd_gettime */,
        222 /* timer_create */, 223 /* timer_settime */, 224 /* timer_gettime */, 225 /* timer_getoverrun */, 226 /* timer_delete */,
        36 /* getitimer */, 38 /* setitimer */,
        39 /* getpid */, 186 /* gettid */, 110 /* getppid */, 111 /* getpgrp */, 121 /* getpgid */, 124 /* getsid */,
        102 /* getuid */, 104 /* getgid */, 107 /* geteuid */, 108 /* getegid */, 115 /* getgroups */, 118 /* getresuid */, 120 /* getresgid */,
        125 /* capget */, 63 /* uname */, 99 /* sysinfo */, 98 /* getrusage */, 100 /* times */, 97 /* getrlimit */,
        318 /* getrandom */, 79 /* getcwd */, 89 /* readlink */, 21 /* access */, 4 /* stat */, 6 /* lstat */,
        61 /* wait4 */, 247 /* waitid */,
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
        // generic instantiation over a struct costs JIT time. Conditional jumps reach 255
        // instructions at most, so the argument checks sit right after the dispatch and the long
        // lists come last, each entry a test followed by its own return.
        var asm = new BpfAssembler(2 * (Denied.Length + Allowed.Length) + 64);
        asm.Load(OffsetArch);
        asm.JumpIfEqual(AUDIT_ARCH_X86_64, None, Kill);
        asm.Load(OffsetNr);
        asm.JumpIfGreaterOrEqual(X32SyscallBit, Enosys, None);
        asm.JumpIfEqual(NrSocket, Socket, None);
        asm.JumpIfEqual(NrSocketPair, Socket, None);
        asm.JumpIfEqual(NrClone, Clone, None);
        asm.JumpIfEqual(NrClone3, Enosys, None);
        asm.JumpIfEqual(NrMknodAt, MknodAt, None);
        asm.JumpIfEqual(NrTgkill, Tgkill, None);
        asm.JumpIfEqual(NrPrlimit64, Prlimit, None);
        asm.JumpIfEqual(NrIoctl, Enotty, None);
        asm.JumpAlways(Lists);

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

        // Signals only to the Gofer's own threads (the runtime suspends threads with tgkill).
        asm.Label(Tgkill);
        asm.Load(OffsetArg0);
        asm.JumpIfEqual((uint)Environment.ProcessId, Allow, Eperm);

        // Resource limits of the Gofer itself only (pid 0 or its own).
        asm.Label(Prlimit);
        asm.Load(OffsetArg0);
        asm.JumpIfEqual(0, Allow, None);
        asm.JumpIfEqual((uint)Environment.ProcessId, Allow, Eperm);

        asm.Label(Allow);
        asm.Return(RET_ALLOW);
        asm.Label(Eperm);
        asm.Return(RET_ERRNO | (uint)Errno.EPERM);
        asm.Label(Enosys);
        asm.Return(RET_ERRNO | (uint)Errno.ENOSYS);
        asm.Label(Enotty);
        asm.Return(RET_ERRNO | (uint)Errno.ENOTTY);
        asm.Label(Eafnosupport);
        asm.Return(RET_ERRNO | (uint)Errno.EAFNOSUPPORT);
        asm.Label(Kill);
        asm.Return(RET_KILL_PROCESS);

        // The lists (the accumulator still holds the syscall number). They are disjoint, so the
        // allow-list, most frequent first, comes first: the calls the Gofer makes all the time
        // (futex, recvmsg, sendmsg, openat2, statx) are decided within a few instructions.
        asm.Label(Lists);
        foreach (uint number in Allowed)
        {
            asm.ReturnIfEqual(number, RET_ALLOW);
        }

        foreach (var (number, _) in Denied)
        {
            asm.ReturnIfEqual(number, RET_ERRNO | (uint)Errno.EPERM);
        }

        asm.Return(RET_ERRNO | (uint)Errno.ENOSYS);
        return asm.Assemble();
    }

    // Labels of the filter program.
    private const int None = -1, Socket = 0, Clone = 1, MknodAt = 2, Allow = 3, Eperm = 4, Enosys = 5, Eafnosupport = 6, Kill = 7,
        Tgkill = 8, Prlimit = 9, Enotty = 10, Lists = 11, LabelCount = 12;

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

    /// <summary>A tiny classic-BPF assembler with forward labels (conditional jumps are 8-bit, JA 32-bit; all go forward).</summary>
    private sealed class BpfAssembler(int capacity)
    {
        private readonly Host.SockFilter[] code = new Host.SockFilter[capacity];
        private readonly int[] jumpTrue = new int[capacity];
        private readonly int[] jumpFalse = new int[capacity];
        private readonly int[] labels = new int[LabelCount];
        private readonly int[] longJumps = new int[capacity]; // label + 1 of an unconditional jump, 0 for none
        private int count;

        /// <summary>A jump whose offsets were written directly.</summary>
        private const int Raw = -2;

        public void Load(uint offset) => Emit(LD_W_ABS, offset, None, None);

        public void And(uint mask) => Emit(AND_K, mask, None, None);

        public void JumpIfEqual(uint value, int whenTrue, int whenFalse) => Emit(JEQ_K, value, whenTrue, whenFalse);

        public void JumpIfGreaterOrEqual(uint value, int whenTrue, int whenFalse) => Emit(JGE_K, value, whenTrue, whenFalse);

        public void JumpIfAnySet(uint mask, int whenTrue, int whenFalse) => Emit(JSET_K, mask, whenTrue, whenFalse);

        public void Return(uint action) => Emit(RET_K, action, None, None);

        /// <summary>An unconditional jump: its 32-bit offset reaches past the 8-bit limit.</summary>
        public void JumpAlways(int label)
        {
            longJumps[count] = label + 1;
            Emit(JA, 0, None, None);
        }

        /// <summary>Returns <paramref name="action"/> when the accumulator equals <paramref name="value"/>, else goes on.</summary>
        public void ReturnIfEqual(uint value, uint action)
        {
            code[count] = new Host.SockFilter { Code = JEQ_K, K = value, JumpTrue = 0, JumpFalse = 1 };
            jumpTrue[count] = jumpFalse[count] = Raw;
            count++;
            Return(action);
        }

        public void Label(int label) => labels[label] = count;

        public Host.SockFilter[] Assemble()
        {
            var program = new Host.SockFilter[count];
            for (int i = 0; i < count; i++)
            {
                program[i] = code[i];
                if (longJumps[i] != 0)
                {
                    program[i].K = (uint)(labels[longJumps[i] - 1] - i - 1);
                    continue;
                }

                if (jumpTrue[i] == Raw)
                {
                    continue;
                }

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
