using System.Runtime.InteropServices;

namespace AppKernel.Platform.Kvm.Native;

/// <summary>The few libc calls the platform makes, with fixed argument lists (ioctl and mmap are variadic in C).</summary>
internal static unsafe partial class LibC
{
    private const string Lib = "libc";

    public const int O_RDWR = 2;
    public const int O_CLOEXEC = 0x80000;
    public const int PROT_NONE = 0;
    public const int PROT_READ = 1;
    public const int PROT_WRITE = 2;
    public const int PROT_EXEC = 4;
    public const int MAP_SHARED = 1;
    public const int MAP_PRIVATE = 2;
    public const int MAP_ANONYMOUS = 0x20;
    public const int MAP_NORESERVE = 0x4000;
    public const int EINTR = 4;
    public const int ENOENT = 2;
    public const int EACCES = 13;
    public const int EPERM = 1;
    public const int EEXIST = 17;
    public const int EAGAIN = 11;
    public const int ENXIO = 6;

    /// <summary>The signal that kicks a vCPU's host thread out of KVM_RUN (SIGSTKFLT: unused by the runtime and libc).</summary>
    public const int SIGKICK = 16;

    public static readonly nint MapFailed = -1;

    [LibraryImport(Lib, EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int Open(string path, int flags);

    [LibraryImport(Lib, EntryPoint = "close", SetLastError = true)]
    public static partial int Close(int fd);

    [LibraryImport(Lib, EntryPoint = "ioctl", SetLastError = true)]
    public static partial int Ioctl(int fd, nuint request, nint argument);

    [LibraryImport(Lib, EntryPoint = "mmap", SetLastError = true)]
    public static partial nint Mmap(nint address, nuint length, int protection, int flags, int fd, long offset);

    [LibraryImport(Lib, EntryPoint = "munmap", SetLastError = true)]
    public static partial int Munmap(nint address, nuint length);

    [LibraryImport(Lib, EntryPoint = "mprotect", SetLastError = true)]
    public static partial int Mprotect(nint address, nuint length, int protection);

    /// <summary>The calling thread's CPU clock.</summary>
    public const int CLOCK_THREAD_CPUTIME_ID = 3;

    [LibraryImport(Lib, EntryPoint = "clock_gettime", SetLastError = true)]
    public static partial int ClockGettime(int clock, long* timespec);

    /// <summary>The CPU clock id of another thread of this process (Linux's MAKE_THREAD_CPUCLOCK(tid, CPUCLOCK_SCHED)).</summary>
    public static int ThreadCpuClock(int tid) => (~tid << 3) | 4 | 2;

    /// <summary>A CPU clock in nanoseconds, or -1 when it cannot be read (the thread is gone).</summary>
    public static long ReadClock(int clock)
    {
        long* ts = stackalloc long[2];
        return ClockGettime(clock, ts) == 0 ? (ts[0] * 1_000_000_000) + ts[1] : -1;
    }

    [LibraryImport(Lib, EntryPoint = "gettid")]
    public static partial int GetTid();

    [LibraryImport(Lib, EntryPoint = "getpid")]
    public static partial int GetPid();

    [LibraryImport(Lib, EntryPoint = "tgkill", SetLastError = true)]
    public static partial int Tgkill(int tgid, int tid, int signal);

    [LibraryImport(Lib, EntryPoint = "sigaction", SetLastError = true)]
    public static partial int SigAction(int signal, SigActionStruct* action, SigActionStruct* old);

    [LibraryImport(Lib, EntryPoint = "strerror")]
    private static partial nint StrError(int errno);

    public static int Errno => Marshal.GetLastPInvokeError();

    public static string Describe(int errno) => $"{Marshal.PtrToStringUTF8(StrError(errno))} (errno {errno})";

    /// <summary>An ioctl retried while it fails with EINTR.</summary>
    public static int IoctlRetry(int fd, nuint request, nint argument)
    {
        while (true)
        {
            int result = Ioctl(fd, request, argument);
            if (result >= 0 || Errno != EINTR)
            {
                return result;
            }
        }
    }

    /// <summary>glibc's <c>struct sigaction</c> on x86-64.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct SigActionStruct
    {
        public nint Handler;
        public fixed ulong Mask[16];
        public int Flags;
        public int Padding;
        public nint Restorer;
    }
}
