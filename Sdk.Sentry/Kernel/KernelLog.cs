using Microsoft.Extensions.Logging;

namespace AppKernel.Sentry.Kernel;

/// <summary>The kernel's log messages (source-generated, no cost when the level is off).</summary>
internal static partial class KernelLog
{
    [LoggerMessage(Level = LogLevel.Warning, Message = "task {Tid}: execve of {Path} failed past the point of no return ({Errno}); the process is killed")]
    public static partial void LogExecFailure(this ILogger logger, int tid, string path, Errno errno);

    [LoggerMessage(Level = LogLevel.Warning, Message = "task {Tid}: clone failed in the platform: {Reason}")]
    public static partial void LogCloneFailure(this ILogger logger, int tid, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "task {Tid}: fault at 0x{Address:x} (rip 0x{Rip:x}, si_code {Code}) becomes SIGSEGV")]
    public static partial void LogFaultSignal(this ILogger logger, int tid, ulong address, ulong rip, int code);

    [LoggerMessage(Level = LogLevel.Information, Message = "task {Tid}: spurious fault at 0x{Address:x} (rip 0x{Rip:x}, {Access}): the platform's mapping was stale; the page was mapped again")]
    public static partial void LogSpuriousFault(this ILogger logger, int tid, ulong address, ulong rip, AppKernel.Platform.MemoryAccess access);

    [LoggerMessage(Level = LogLevel.Warning, Message = "out of memory: killed process {Pid} ({Name}); the sandbox holds {Resident} bytes of its {Limit}-byte limit")]
    public static partial void LogOomKill(this ILogger logger, int pid, string name, long resident, long limit);
}
