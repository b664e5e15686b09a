using System.Runtime.InteropServices;

namespace AppKernel.Platform.Ptrace.Native;

// Reading the stub threads' CPU time from procfs.
internal static unsafe partial class LibC
{
    public const int O_RDONLY = 0;

    [LibraryImport(Lib, EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int Open(string path, int flags);

    [LibraryImport(Lib, EntryPoint = "pread64", SetLastError = true)]
    public static partial nint Pread(int fd, byte* buffer, nuint count, long offset);

    [LibraryImport(Lib, EntryPoint = "sysconf")]
    public static partial long Sysconf(int name);

    public const int SC_CLK_TCK = 2;
}
