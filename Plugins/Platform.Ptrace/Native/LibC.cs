using System.Runtime.InteropServices;

namespace AppKernel.Platform.Ptrace.Native;

/// <summary>
/// The host calls the ptrace platform makes. libc's variadic functions (ptrace, syscall) are
/// bound with fixed argument lists; every call that can fail records errno.
/// </summary>
internal static unsafe partial class LibC
{
    private const string Lib = "libc";

    public const int EINTR = 4, ESRCH = 3, ECHILD = 10, EAGAIN = 11, EINVAL = 22, EPERM = 1;

    public const int SIGKILL = 9, SIGTRAP = 5, SIGILL = 4, SIGBUS = 7, SIGFPE = 8, SIGSEGV = 11, SIGSTKFLT = 16, SIGSTOP = 19, SIGSYS = 31;

    public const int SEGV_MAPERR = 1, SI_KERNEL = 0x80;

    public const int WNOHANG = 1, WALL = 0x40000000;

    public const uint MFD_CLOEXEC = 1, MFD_ALLOW_SEALING = 2, MFD_EXEC = 0x10;
    public const int F_ADD_SEALS = 1033, F_DUPFD_CLOEXEC = 1030, O_CLOEXEC = 0x80000;
    public const int F_SEAL_SEAL = 1, F_SEAL_SHRINK = 2, F_SEAL_GROW = 4, F_SEAL_WRITE = 8;

    public const short POSIX_SPAWN_SETSIGDEF = 0x04, POSIX_SPAWN_SETSIGMASK = 0x08, POSIX_SPAWN_SETSID = 0x80;

    [LibraryImport(Lib, EntryPoint = "ptrace", SetLastError = true)]
    public static partial long Ptrace(long request, int pid, nint address, nint data);

    [LibraryImport(Lib, EntryPoint = "waitpid", SetLastError = true)]
    public static partial int WaitPid(int pid, int* status, int options);

    [LibraryImport(Lib, EntryPoint = "tgkill", SetLastError = true)]
    public static partial int Tgkill(int tgid, int tid, int signal);

    [LibraryImport(Lib, EntryPoint = "kill", SetLastError = true)]
    public static partial int Kill(int pid, int signal);

    [LibraryImport(Lib, EntryPoint = "getpid")]
    public static partial int GetPid();

    [LibraryImport(Lib, EntryPoint = "gettid")]
    public static partial int GetTid();

    [LibraryImport(Lib, EntryPoint = "sched_setaffinity", SetLastError = true)]
    public static partial int SchedSetAffinity(int pid, nuint size, ulong* mask);

    [LibraryImport(Lib, EntryPoint = "sched_getaffinity", SetLastError = true)]
    public static partial int SchedGetAffinity(int pid, nuint size, ulong* mask);

    [LibraryImport(Lib, EntryPoint = "memfd_create", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int MemfdCreate(string name, uint flags);

    [LibraryImport(Lib, EntryPoint = "write", SetLastError = true)]
    public static partial nint Write(int fd, byte* buffer, nuint count);

    [LibraryImport(Lib, EntryPoint = "pipe2", SetLastError = true)]
    public static partial int Pipe2(int* fds, int flags);

    [LibraryImport(Lib, EntryPoint = "read", SetLastError = true)]
    public static partial nint Read(int fd, byte* buffer, nuint count);

    [LibraryImport(Lib, EntryPoint = "fcntl", SetLastError = true)]
    public static partial int Fcntl(int fd, int command, long argument);

    [LibraryImport(Lib, EntryPoint = "close", SetLastError = true)]
    public static partial int Close(int fd);

    [LibraryImport(Lib, EntryPoint = "posix_spawn")]
    public static partial int PosixSpawn(int* pid, byte* path, void* fileActions, void* attributes, byte** argv, byte** envp);

    [LibraryImport(Lib, EntryPoint = "posix_spawn_file_actions_init")]
    public static partial int PosixSpawnFileActionsInit(void* fileActions);

    [LibraryImport(Lib, EntryPoint = "posix_spawn_file_actions_adddup2")]
    public static partial int PosixSpawnFileActionsAddDup2(void* fileActions, int fd, int newFd);

    [LibraryImport(Lib, EntryPoint = "posix_spawn_file_actions_addchdir_np")]
    public static partial int PosixSpawnFileActionsAddChdir(void* fileActions, byte* path);

    [LibraryImport(Lib, EntryPoint = "posix_spawn_file_actions_destroy")]
    public static partial int PosixSpawnFileActionsDestroy(void* fileActions);

    [LibraryImport(Lib, EntryPoint = "posix_spawnattr_init")]
    public static partial int PosixSpawnAttrInit(void* attributes);

    [LibraryImport(Lib, EntryPoint = "posix_spawnattr_setflags")]
    public static partial int PosixSpawnAttrSetFlags(void* attributes, short flags);

    [LibraryImport(Lib, EntryPoint = "posix_spawnattr_setsigmask")]
    public static partial int PosixSpawnAttrSetSigMask(void* attributes, ulong* signalSet);

    [LibraryImport(Lib, EntryPoint = "posix_spawnattr_setsigdefault")]
    public static partial int PosixSpawnAttrSetSigDefault(void* attributes, ulong* signalSet);

    [LibraryImport(Lib, EntryPoint = "posix_spawnattr_destroy")]
    public static partial int PosixSpawnAttrDestroy(void* attributes);

    /// <summary>The errno of the last failed call on this thread.</summary>
    public static int Errno => Marshal.GetLastPInvokeError();

    /// <summary>A message for <paramref name="errno"/>, e.g. "Operation not permitted (errno 1)".</summary>
    public static string Describe(int errno) => $"{Marshal.GetPInvokeErrorMessage(errno)} (errno {errno})";
}
