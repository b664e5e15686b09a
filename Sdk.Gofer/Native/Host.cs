using System.Runtime.InteropServices;

namespace AppKernel.Gofer.Native;

/// <summary>
/// The host calls the Gofer and its client make. Variadic libc functions (syscall, prctl,
/// fcntl) are bound with fixed arguments; every call that can fail sets errno, read with
/// <see cref="Errno"/>. Calls that can be interrupted by the runtime's own signals are
/// retried by the callers on EINTR.
/// </summary>
internal static unsafe partial class Host
{
    private const string Lib = "libc.so.6";

    // open(2) and *at(2) flags (x86-64).
    public const int O_RDONLY = 0, O_WRONLY = 1, O_RDWR = 2, O_ACCMODE = 3;
    public const int O_CREAT = 0x40, O_EXCL = 0x80, O_NOCTTY = 0x100, O_TRUNC = 0x200, O_APPEND = 0x400, O_NONBLOCK = 0x800;
    public const int O_DSYNC = 0x1000, O_DIRECTORY = 0x10000, O_NOFOLLOW = 0x20000, O_CLOEXEC = 0x80000, O_SYNC = 0x101000, O_PATH = 0x200000;
    public const int AT_FDCWD = -100, AT_SYMLINK_NOFOLLOW = 0x100, AT_REMOVEDIR = 0x200, AT_EMPTY_PATH = 0x1000;

    // openat2(2) resolve flags.
    public const ulong RESOLVE_NO_XDEV = 0x01, RESOLVE_NO_MAGICLINKS = 0x02, RESOLVE_NO_SYMLINKS = 0x04, RESOLVE_BENEATH = 0x08;

    /// <summary>The resolution every Gofer open uses: stay beneath the directory, follow nothing, cross no mount.</summary>
    public const ulong ResolveConfined = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV;

    // File types (st_mode).
    public const uint S_IFMT = 0xF000, S_IFSOCK = 0xC000, S_IFLNK = 0xA000, S_IFREG = 0x8000, S_IFBLK = 0x6000;
    public const uint S_IFDIR = 0x4000, S_IFCHR = 0x2000, S_IFIFO = 0x1000, S_ISUID = 0x800, S_ISGID = 0x400;

    // Sockets.
    public const int AF_UNIX = 1, SOCK_SEQPACKET = 5, SOCK_CLOEXEC = 0x80000, SOL_SOCKET = 1, SCM_RIGHTS = 1;
    public const int SO_TYPE = 3, SO_DOMAIN = 39, SO_RCVTIMEO = 20;
    public const int MSG_TRUNC = 0x20, MSG_CTRUNC = 0x8, MSG_NOSIGNAL = 0x4000, MSG_CMSG_CLOEXEC = 0x40000000;

    // Errors the code tests for.
    public const int EINTR = 4, EAGAIN = 11, ENOSYS = 38, EPERM = 1, ENOENT = 2;

    // Syscall numbers (x86-64) without a libc wrapper.
    public const long SYS_openat2 = 437, SYS_seccomp = 317, SYS_fchmodat2 = 452;

    // prctl(2).
    public const int PR_SET_PDEATHSIG = 1, PR_SET_DUMPABLE = 4, PR_SET_NO_NEW_PRIVS = 38;

    public const int SEEK_SET = 0;
    public const int WNOHANG = 1;
    public const int SIGKILL = 9, SIGSTOP = 19, SIGCONT = 18;
    public const int CLONE_NEWNET = 0x40000000;
    public const int UTIME_OMIT = (1 << 30) - 2;

    /// <summary>The kernel's <c>struct open_how</c> for openat2.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct OpenHow
    {
        public ulong Flags;
        public ulong Mode;
        public ulong Resolve;
    }

    /// <summary>The kernel's <c>struct statx_timestamp</c>.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct StatxTimestamp
    {
        public long Seconds;
        public uint Nanoseconds;
        public int Reserved;
    }

    /// <summary>The kernel's <c>struct statx</c> (256 bytes).</summary>
    [StructLayout(LayoutKind.Sequential, Size = 256)]
    public struct Statx
    {
        public uint Mask;
        public uint BlockSize;
        public ulong Attributes;
        public uint Nlink;
        public uint Uid;
        public uint Gid;
        public ushort Mode;
        public ushort Spare0;
        public ulong Ino;
        public ulong Size;
        public ulong Blocks;
        public ulong AttributesMask;
        public StatxTimestamp Atime;
        public StatxTimestamp Btime;
        public StatxTimestamp Ctime;
        public StatxTimestamp Mtime;
        public uint RdevMajor;
        public uint RdevMinor;
        public uint DevMajor;
        public uint DevMinor;

        /// <summary>The device number as <c>st_dev</c> encodes it.</summary>
        public readonly ulong Dev => MakeDev(DevMajor, DevMinor);

        /// <summary>The represented device as <c>st_rdev</c> encodes it.</summary>
        public readonly ulong Rdev => MakeDev(RdevMajor, RdevMinor);
    }

    public const uint STATX_BASIC_STATS = 0x7ff, STATX_BTIME = 0x800;

    /// <summary>The host's <c>struct stat</c> on x86-64.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct Stat
    {
        public ulong Dev, Ino, Nlink;
        public uint Mode, Uid, Gid, Pad0;
        public ulong Rdev;
        public long Size, BlockSize, Blocks;
        public long Atime, AtimeNsec, Mtime, MtimeNsec, Ctime, CtimeNsec;
        public long Reserved0, Reserved1, Reserved2;
    }

    /// <summary>The kernel's <c>struct statfs</c> on x86-64.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct StatFs
    {
        public long Type, BlockSize;
        public ulong Blocks, FreeBlocks, AvailableBlocks, Files, FreeFiles;
        public int FsId0, FsId1;
        public long NameLength, FragmentSize, Flags;
        public long Spare0, Spare1, Spare2, Spare3;
    }

    /// <summary><c>struct timespec</c>.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct TimeSpec
    {
        public long Seconds;
        public long Nanoseconds;
    }

    /// <summary><c>struct iovec</c>.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct IoVec
    {
        public void* Base;
        public nuint Length;
    }

    /// <summary><c>struct msghdr</c>.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct MsgHdr
    {
        public void* Name;
        public uint NameLength;
        public IoVec* Iov;
        public nuint IovLength;
        public void* Control;
        public nuint ControlLength;
        public int Flags;
    }

    /// <summary>The header of one ancillary message (<c>struct cmsghdr</c>).</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct CmsgHdr
    {
        public nuint Length;
        public int Level;
        public int Type;
    }

    /// <summary>CMSG_SPACE for one file descriptor.</summary>
    public const int CmsgSpaceOneFd = 24;

    /// <summary>CMSG_LEN for one file descriptor.</summary>
    public const int CmsgLenOneFd = 20;

    /// <summary><c>struct sock_filter</c>: one classic BPF instruction.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct SockFilter
    {
        public ushort Code;
        public byte JumpTrue;
        public byte JumpFalse;
        public uint K;
    }

    /// <summary><c>struct sock_fprog</c>.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct SockFprog
    {
        public ushort Length;
        public SockFilter* Filter;
    }

    public static ulong MakeDev(uint major, uint minor) =>
        ((ulong)(major & 0xfffff000) << 32) | ((ulong)(major & 0xfff) << 8) | ((ulong)(minor & 0xffffff00) << 12) | (minor & 0xff);

    /// <summary>The errno of the last failed call on this thread.</summary>
    public static int Errno => Marshal.GetLastPInvokeError();

    [LibraryImport(Lib, EntryPoint = "syscall", SetLastError = true)]
    private static partial long Syscall4(long number, long a, long b, long c, long d);

    [LibraryImport(Lib, EntryPoint = "syscall", SetLastError = true)]
    private static partial long Syscall3(long number, long a, long b, long c);

    /// <summary>A raw three-argument syscall, for the confinement probes (calls the Gofer never makes otherwise).</summary>
    public static long RawSyscall(long number, long a, long b, long c) => Syscall3(number, a, b, c);

    /// <summary>openat2(2).</summary>
    public static int OpenAt2(int dirFd, byte* path, OpenHow* how) =>
        (int)Syscall4(SYS_openat2, dirFd, (long)path, (long)how, sizeof(OpenHow));

    /// <summary>fchmodat2(2) (Linux 6.6), which takes AT_EMPTY_PATH so an O_PATH descriptor can be changed.</summary>
    public static int FchmodAt2(int dirFd, byte* path, uint mode, int flags) =>
        (int)Syscall4(SYS_fchmodat2, dirFd, (long)path, mode, flags);

    /// <summary>seccomp(2).</summary>
    public static long Seccomp(uint operation, uint flags, void* args) => Syscall3(SYS_seccomp, operation, flags, (long)args);

    [LibraryImport(Lib, EntryPoint = "open", SetLastError = true)]
    public static partial int Open(byte* path, int flags, uint mode);

    [LibraryImport(Lib, EntryPoint = "close", SetLastError = true)]
    public static partial int Close(int fd);

    [LibraryImport(Lib, EntryPoint = "statx", SetLastError = true)]
    public static partial int StatxCall(int dirFd, byte* path, int flags, uint mask, Statx* buffer);

    [LibraryImport(Lib, EntryPoint = "fstat", SetLastError = true)]
    public static partial int Fstat(int fd, Stat* stat);

    [LibraryImport(Lib, EntryPoint = "lstat", SetLastError = true)]
    public static partial int Lstat(byte* path, Stat* stat);

    [LibraryImport(Lib, EntryPoint = "fstatfs", SetLastError = true)]
    public static partial int Fstatfs(int fd, StatFs* stat);

    [LibraryImport(Lib, EntryPoint = "readlinkat", SetLastError = true)]
    public static partial nint ReadLinkAt(int dirFd, byte* path, byte* buffer, nuint size);

    [LibraryImport(Lib, EntryPoint = "getdents64", SetLastError = true)]
    public static partial nint GetDents64(int fd, byte* buffer, nuint size);

    [LibraryImport(Lib, EntryPoint = "lseek", SetLastError = true)]
    public static partial long Lseek(int fd, long offset, int whence);

    [LibraryImport(Lib, EntryPoint = "mkdirat", SetLastError = true)]
    public static partial int MkdirAt(int dirFd, byte* path, uint mode);

    [LibraryImport(Lib, EntryPoint = "mknodat", SetLastError = true)]
    public static partial int MknodAt(int dirFd, byte* path, uint mode, ulong device);

    [LibraryImport(Lib, EntryPoint = "symlinkat", SetLastError = true)]
    public static partial int SymlinkAt(byte* target, int dirFd, byte* path);

    [LibraryImport(Lib, EntryPoint = "linkat", SetLastError = true)]
    public static partial int LinkAt(int oldDirFd, byte* oldPath, int newDirFd, byte* newPath, int flags);

    [LibraryImport(Lib, EntryPoint = "unlinkat", SetLastError = true)]
    public static partial int UnlinkAt(int dirFd, byte* path, int flags);

    [LibraryImport(Lib, EntryPoint = "renameat2", SetLastError = true)]
    public static partial int RenameAt2(int oldDirFd, byte* oldPath, int newDirFd, byte* newPath, uint flags);

    [LibraryImport(Lib, EntryPoint = "fchownat", SetLastError = true)]
    public static partial int FchownAt(int dirFd, byte* path, int uid, int gid, int flags);

    [LibraryImport(Lib, EntryPoint = "utimensat", SetLastError = true)]
    public static partial int UtimensAt(int dirFd, byte* path, TimeSpec* times, int flags);

    [LibraryImport(Lib, EntryPoint = "ftruncate", SetLastError = true)]
    public static partial int Ftruncate(int fd, long length);

    [LibraryImport(Lib, EntryPoint = "fallocate64", SetLastError = true)]
    public static partial int Fallocate(int fd, int mode, long offset, long length);

    [LibraryImport(Lib, EntryPoint = "pread64", SetLastError = true)]
    public static partial nint Pread(int fd, byte* buffer, nuint count, long offset);

    [LibraryImport(Lib, EntryPoint = "pwrite64", SetLastError = true)]
    public static partial nint Pwrite(int fd, byte* buffer, nuint count, long offset);

    [LibraryImport(Lib, EntryPoint = "read", SetLastError = true)]
    public static partial nint Read(int fd, byte* buffer, nuint count);

    [LibraryImport(Lib, EntryPoint = "fsync", SetLastError = true)]
    public static partial int Fsync(int fd);

    [LibraryImport(Lib, EntryPoint = "fdatasync", SetLastError = true)]
    public static partial int Fdatasync(int fd);

    [LibraryImport(Lib, EntryPoint = "socketpair", SetLastError = true)]
    public static partial int SocketPair(int domain, int type, int protocol, int* fds);

    [LibraryImport(Lib, EntryPoint = "socket", SetLastError = true)]
    public static partial int Socket(int domain, int type, int protocol);

    [LibraryImport(Lib, EntryPoint = "getsockopt", SetLastError = true)]
    public static partial int GetSockOpt(int fd, int level, int name, void* value, uint* length);

    [LibraryImport(Lib, EntryPoint = "setsockopt", SetLastError = true)]
    public static partial int SetSockOpt(int fd, int level, int name, void* value, uint length);

    [LibraryImport(Lib, EntryPoint = "sendmsg", SetLastError = true)]
    public static partial nint SendMsg(int fd, MsgHdr* message, int flags);

    [LibraryImport(Lib, EntryPoint = "recvmsg", SetLastError = true)]
    public static partial nint RecvMsg(int fd, MsgHdr* message, int flags);

    [LibraryImport(Lib, EntryPoint = "shutdown", SetLastError = true)]
    public static partial int Shutdown(int fd, int how);

    [LibraryImport(Lib, EntryPoint = "prctl", SetLastError = true)]
    public static partial int Prctl(int option, ulong arg2, ulong arg3, ulong arg4, ulong arg5);

    [LibraryImport(Lib, EntryPoint = "unshare", SetLastError = true)]
    public static partial int Unshare(int flags);

    public const int CLONE_NEWNS = 0x00020000;
    public const ulong MS_RDONLY = 0x1, MS_NOSUID = 0x2, MS_NODEV = 0x4, MS_NOEXEC = 0x8, MS_REMOUNT = 0x20;
    public const ulong MS_BIND = 0x1000, MS_REC = 0x4000, MS_PRIVATE = 0x40000;
    public const int MNT_DETACH = 2;
    public const long SYS_pivot_root = 155, SYS_capget = 125, SYS_capset = 126;
    public const int PR_CAPBSET_READ = 23, PR_CAPBSET_DROP = 24, PR_CAP_AMBIENT = 47, PR_CAP_AMBIENT_CLEAR_ALL = 4;

    /// <summary>_LINUX_CAPABILITY_VERSION_3: two 32-bit words per set.</summary>
    public const uint CapabilityVersion3 = 0x20080522;

    /// <summary>struct __user_cap_header_struct.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct CapHeader
    {
        public uint Version;
        public int Pid;
    }

    /// <summary>struct __user_cap_data_struct (one of two for version 3).</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct CapData
    {
        public uint Effective;
        public uint Permitted;
        public uint Inheritable;
    }

    [LibraryImport(Lib, EntryPoint = "mount", SetLastError = true)]
    public static partial int Mount(byte* source, byte* target, byte* type, ulong flags, byte* data);

    [LibraryImport(Lib, EntryPoint = "umount2", SetLastError = true)]
    public static partial int Umount2(byte* target, int flags);

    [LibraryImport(Lib, EntryPoint = "chdir", SetLastError = true)]
    public static partial int Chdir(byte* path);

    /// <summary>pivot_root(2) (no libc wrapper).</summary>
    public static int PivotRoot(byte* newRoot, byte* putOld) => (int)Syscall3(SYS_pivot_root, (long)newRoot, (long)putOld, 0);

    /// <summary>capget(2) for the calling thread (data: two entries).</summary>
    public static int CapGet(CapData* data)
    {
        CapHeader header = new() { Version = CapabilityVersion3 };
        return (int)Syscall3(SYS_capget, (long)&header, (long)data, 0);
    }

    /// <summary>capset(2) for the calling thread (data: two entries).</summary>
    public static int CapSet(CapData* data)
    {
        CapHeader header = new() { Version = CapabilityVersion3 };
        return (int)Syscall3(SYS_capset, (long)&header, (long)data, 0);
    }

    [LibraryImport(Lib, EntryPoint = "getppid")]
    public static partial int GetParentPid();

    [LibraryImport(Lib, EntryPoint = "getpid")]
    public static partial int GetPid();

    [LibraryImport(Lib, EntryPoint = "geteuid")]
    public static partial uint GetEffectiveUid();

    [LibraryImport(Lib, EntryPoint = "_exit")]
    public static partial void Exit(int status);

    [LibraryImport(Lib, EntryPoint = "kill", SetLastError = true)]
    public static partial int Kill(int pid, int signal);

    [LibraryImport(Lib, EntryPoint = "waitpid", SetLastError = true)]
    public static partial int WaitPid(int pid, int* status, int options);

    [LibraryImport(Lib, EntryPoint = "pipe2", SetLastError = true)]
    public static partial int Pipe2(int* fds, int flags);

    [LibraryImport(Lib, EntryPoint = "memfd_create", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int MemfdCreate(string name, uint flags);

    [LibraryImport(Lib, EntryPoint = "write", SetLastError = true)]
    public static partial nint Write(int fd, byte* buffer, nuint count);

    public const int F_SETFL = 4, F_DUPFD_CLOEXEC = 1030;

    [LibraryImport(Lib, EntryPoint = "fcntl", SetLastError = true)]
    public static partial int Fcntl(int fd, int command, int argument);

    [LibraryImport(Lib, EntryPoint = "umask")]
    public static partial uint Umask(uint mask);

    [LibraryImport(Lib, EntryPoint = "execve", SetLastError = true)]
    public static partial int Execve(byte* path, byte** argv, byte** envp);

    // posix_spawn(3) and its attribute objects (opaque; glibc's are 80 and 336 bytes).
    public const int SpawnFileActionsSize = 128, SpawnAttrSize = 512, SigSetSize = 128;
    public const short POSIX_SPAWN_SETPGROUP = 0x02, POSIX_SPAWN_SETSIGDEF = 0x04, POSIX_SPAWN_SETSIGMASK = 0x08;

    [LibraryImport(Lib, EntryPoint = "posix_spawn")]
    public static partial int PosixSpawn(int* pid, byte* path, void* fileActions, void* attributes, byte** argv, byte** envp);

    [LibraryImport(Lib, EntryPoint = "posix_spawn_file_actions_init")]
    public static partial int SpawnFileActionsInit(void* actions);

    [LibraryImport(Lib, EntryPoint = "posix_spawn_file_actions_destroy")]
    public static partial int SpawnFileActionsDestroy(void* actions);

    [LibraryImport(Lib, EntryPoint = "posix_spawn_file_actions_adddup2")]
    public static partial int SpawnFileActionsAddDup2(void* actions, int fd, int newFd);

    [LibraryImport(Lib, EntryPoint = "posix_spawn_file_actions_addopen")]
    public static partial int SpawnFileActionsAddOpen(void* actions, int fd, byte* path, int flags, uint mode);

    [LibraryImport(Lib, EntryPoint = "posix_spawn_file_actions_addclosefrom_np")]
    public static partial int SpawnFileActionsAddCloseFrom(void* actions, int from);

    [LibraryImport(Lib, EntryPoint = "posix_spawnattr_init")]
    public static partial int SpawnAttrInit(void* attributes);

    [LibraryImport(Lib, EntryPoint = "posix_spawnattr_destroy")]
    public static partial int SpawnAttrDestroy(void* attributes);

    [LibraryImport(Lib, EntryPoint = "posix_spawnattr_setflags")]
    public static partial int SpawnAttrSetFlags(void* attributes, short flags);

    [LibraryImport(Lib, EntryPoint = "posix_spawnattr_setsigmask")]
    public static partial int SpawnAttrSetSigMask(void* attributes, void* mask);

    [LibraryImport(Lib, EntryPoint = "posix_spawnattr_setsigdefault")]
    public static partial int SpawnAttrSetSigDefault(void* attributes, void* mask);

    [LibraryImport(Lib, EntryPoint = "posix_spawnattr_setpgroup")]
    public static partial int SpawnAttrSetPgroup(void* attributes, int pgroup);

    [LibraryImport(Lib, EntryPoint = "sigemptyset")]
    public static partial int SigEmptySet(void* set);

    [LibraryImport(Lib, EntryPoint = "sigfillset")]
    public static partial int SigFillSet(void* set);

    [LibraryImport(Lib, EntryPoint = "sigdelset")]
    public static partial int SigDelSet(void* set, int signal);

    /// <summary>Closes <paramref name="fd"/> when it is valid, ignoring errors (cleanup paths).</summary>
    public static void CloseQuietly(int fd)
    {
        if (fd >= 0)
        {
            Close(fd);
        }
    }

    /// <summary>A short, stable name for an errno (for diagnostics).</summary>
    public static string ErrnoName(int errno) =>
        Enum.IsDefined(typeof(global::AppKernel.Errno), errno) ? ((global::AppKernel.Errno)errno).ToString() : $"errno {errno}";
}
