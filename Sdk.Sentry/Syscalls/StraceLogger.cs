using System.Text;
using AppKernel.Sentry.Abi;
using AppKernel.Sentry.Kernel;
using AppKernel.Syscalls;
using Microsoft.Extensions.Logging;

namespace AppKernel.Sentry.Syscalls;

/// <summary>
/// --strace: one line per syscall in strace's style, through ILogger. Arguments are decoded
/// before the call (an execve's path is gone after it); the result is added after, and with
/// <c>times</c> the call's duration in the Sentry as strace -T shows it.
/// </summary>
internal sealed partial class StraceLogger(ILogger logger, bool times = false)
{
    /// <summary>Whether lines end with the call's duration (callers then pass it to <see cref="End"/>).</summary>
    public bool Times => times;

    // Argument kinds per syscall: s path, A dirfd, F open flags, o octal mode, P prot, M mmap flags,
    // n signal, d signed, u unsigned, x hex.
    private static readonly Dictionary<string, string> Formats = new()
    {
        ["read"] = "d,x,u", ["write"] = "d,x,u", ["pread64"] = "d,x,u,d", ["pwrite64"] = "d,x,u,d",
        ["readv"] = "d,x,d", ["writev"] = "d,x,d", ["open"] = "s,F,o", ["openat"] = "A,s,F,o", ["creat"] = "s,o",
        ["close"] = "d", ["stat"] = "s,x", ["lstat"] = "s,x", ["fstat"] = "d,x", ["newfstatat"] = "A,s,x,x",
        ["statx"] = "A,s,x,x,x", ["access"] = "s,o", ["faccessat"] = "A,s,o", ["faccessat2"] = "A,s,o,x",
        ["execve"] = "s,x,x", ["execveat"] = "A,s,x,x,x", ["mmap"] = "x,u,P,M,d,x", ["mprotect"] = "x,u,P",
        ["munmap"] = "x,u", ["mremap"] = "x,u,u,x,x", ["brk"] = "x", ["readlink"] = "s,x,u", ["readlinkat"] = "A,s,x,u",
        ["chdir"] = "s", ["mkdir"] = "s,o", ["mkdirat"] = "A,s,o", ["rmdir"] = "s", ["unlink"] = "s",
        ["unlinkat"] = "A,s,x", ["rename"] = "s,s", ["renameat"] = "A,s,A,s", ["renameat2"] = "A,s,A,s,x",
        ["symlink"] = "s,s", ["symlinkat"] = "s,A,s", ["link"] = "s,s", ["chmod"] = "s,o", ["fchmodat"] = "A,s,o",
        ["chown"] = "s,d,d", ["truncate"] = "s,d", ["ftruncate"] = "d,d", ["getdents64"] = "d,x,u", ["lseek"] = "d,d,d",
        ["ioctl"] = "d,x,x", ["fcntl"] = "d,d,x", ["dup"] = "d", ["dup2"] = "d,d", ["dup3"] = "d,d,x", ["pipe2"] = "x,F",
        ["exit"] = "d", ["exit_group"] = "d", ["kill"] = "d,n", ["tgkill"] = "d,d,n", ["rt_sigaction"] = "n,x,x,u",
        ["rt_sigprocmask"] = "d,x,x,u", ["arch_prctl"] = "x,x", ["set_tid_address"] = "x", ["futex"] = "x,d,d,x,x,d",
        ["clock_gettime"] = "d,x", ["nanosleep"] = "x,x", ["getrandom"] = "x,u,x", ["prlimit64"] = "d,d,x,x",
        ["uname"] = "x", ["getcwd"] = "x,u", ["fchdir"] = "d", ["umask"] = "o", ["wait4"] = "d,x,x,x",
        ["clone"] = "x,x,x,x,x", ["socket"] = "d,d,d", ["connect"] = "d,x,d", ["sendfile"] = "d,d,x,u",
    };

    private static readonly (int Bit, string Name)[] OpenFlagNames =
    [
        (0x40, "O_CREAT"), (0x80, "O_EXCL"), (0x100, "O_NOCTTY"), (0x200, "O_TRUNC"), (0x400, "O_APPEND"),
        (0x800, "O_NONBLOCK"), (0x10000, "O_DIRECTORY"), (0x20000, "O_NOFOLLOW"), (0x80000, "O_CLOEXEC"), (0x200000, "O_PATH"),
    ];

    /// <summary>Decodes the call's arguments (before it runs).</summary>
    public string Begin(KernelTask task)
    {
        string name = SyscallNames.Get(task.Number) ?? $"syscall_{task.Number}";
        var args = task.Arguments;
        var text = new StringBuilder();
        text.Append(name).Append('(');
        string format = Formats.GetValueOrDefault(name, "x,x,x");
        var kinds = format.Split(',');
        for (int i = 0; i < kinds.Length && i < 6; i++)
        {
            if (i > 0)
            {
                text.Append(", ");
            }

            ulong value = args[i];
            text.Append(kinds[i] switch
            {
                "s" => ReadString(task, value),
                "A" => (int)value == LinuxConstants.AT_FDCWD ? "AT_FDCWD" : ((int)value).ToString(),
                "F" => OpenFlags((uint)value),
                "o" => "0" + Convert.ToString((long)(value & 0xFFFF), 8),
                "P" => Prot((int)value),
                "M" => MapFlags((int)value),
                "n" => (int)value is > 0 and <= Signals.NSIG ? Signals.Name((int)value) : ((int)value).ToString(),
                "d" => ((long)value).ToString(),
                "u" => value.ToString(),
                _ => value == 0 ? "NULL" : $"0x{value:x}",
            });
        }

        return text.Append(')').ToString();
    }

    /// <summary>Logs the call with its result.</summary>
    public void End(KernelTask task, string? call, SyscallResult result, TimeSpan elapsed = default)
    {
        if (!logger.IsEnabled(LogLevel.Information))
        {
            return;
        }

        string outcome = result.IsNoReturn ? "?"
            : result.IsError ? $"-1 {result.Errno}"
            : task.Number is 9 or 12 or 25 ? $"0x{(ulong)result.Raw:x}" : result.Raw.ToString();
        if (times)
        {
            // strace -T: seconds with six decimals.
            outcome += FormattableString.Invariant($" <{elapsed.Ticks / 10_000_000}.{elapsed.Ticks / 10 % 1_000_000:D6}>");
        }

        LogCall(logger, task.Tid, call ?? "", outcome);
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "[pid {Tid}] {Call} = {Result}")]
    private static partial void LogCall(ILogger logger, int tid, string call, string result);

    private static string ReadString(KernelTask task, ulong address)
    {
        if (address == 0)
        {
            return "NULL";
        }

        try
        {
            string s = task.Mm.ReadCString(address, 4096);
            return "\"" + (s.Length > 64 ? s[..64] + "\"..." : s + "\"");
        }
        catch (ErrnoException)
        {
            return $"0x{address:x}";
        }
    }

    private static string OpenFlags(uint flags)
    {
        var parts = new List<string> { (flags & 3) switch { 0 => "O_RDONLY", 1 => "O_WRONLY", _ => "O_RDWR" } };
        foreach (var (bit, name) in OpenFlagNames)
        {
            if ((flags & bit) != 0)
            {
                parts.Add(name);
            }
        }

        return string.Join('|', parts);
    }

    private static string Prot(int prot)
    {
        if (prot == 0)
        {
            return "PROT_NONE";
        }

        var parts = new List<string>();
        if ((prot & 1) != 0) parts.Add("PROT_READ");
        if ((prot & 2) != 0) parts.Add("PROT_WRITE");
        if ((prot & 4) != 0) parts.Add("PROT_EXEC");
        return string.Join('|', parts);
    }

    private static string MapFlags(int flags)
    {
        var parts = new List<string> { (flags & 0xf) switch { 1 => "MAP_SHARED", 2 => "MAP_PRIVATE", 3 => "MAP_SHARED_VALIDATE", _ => $"0x{flags & 0xf:x}" } };
        if ((flags & 0x10) != 0) parts.Add("MAP_FIXED");
        if ((flags & 0x20) != 0) parts.Add("MAP_ANONYMOUS");
        if ((flags & 0x800) != 0) parts.Add("MAP_DENYWRITE");
        if ((flags & 0x8000) != 0) parts.Add("MAP_POPULATE");
        if ((flags & 0x4000) != 0) parts.Add("MAP_NORESERVE");
        if ((flags & 0x20000) != 0) parts.Add("MAP_STACK");
        if ((flags & 0x100000) != 0) parts.Add("MAP_FIXED_NOREPLACE");
        return string.Join('|', parts);
    }
}
