using System.Buffers.Binary;
using System.Net;
using System.Text;
using AppKernel;
using AppKernel.Syscalls;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace AuditPlugin;

/// <summary>
/// Logs every execve, openat (and open, creat, openat2) and connect with decoded arguments as
/// structured log records, and refuses with EACCES any open for writing outside <c>/tmp</c>.
/// </summary>
/// <remarks>
/// <para>
/// The write rule is lexical: an absolute path is normalised ("." and ".." removed) and must lie
/// under <c>/tmp/</c>; a relative path (which this interceptor cannot resolve: it does not see the
/// caller's working directory or descriptor table) counts as outside, so the rule fails closed.
/// A few character devices programs write to as a matter of course are allowed
/// (<c>/dev/null</c>, <c>/dev/zero</c>, <c>/dev/full</c>, <c>/dev/tty</c>, <c>/dev/stdout</c>, <c>/dev/stderr</c>).
/// A symbolic link made inside /tmp still leads wherever it points: pair the plugin with a
/// read-only root (<see cref="RootFsMode.ReadOnly"/>) when that matters.
/// </para>
/// <para>Only opens are checked; rename, unlink, mkdir, truncate and the like are not.</para>
/// </remarks>
public sealed partial class AuditInterceptor : ISyscallInterceptor
{
    private const int Open = 2, Connect = 42, Execve = 59, Creat = 85, Openat = 257, Execveat = 322, Openat2 = 437;
    private const int O_ACCMODE = 3, O_CREAT = 0x40, O_TRUNC = 0x200;

    private static readonly string[] AllowedDevices = ["/dev/null", "/dev/zero", "/dev/full", "/dev/tty", "/dev/stdout", "/dev/stderr"];

    private readonly ILogger logger;

    /// <summary>Creates the interceptor; the host's DI container passes its logger when logging is set up.</summary>
    /// <param name="logger">Where the audit records go; null logs nothing.</param>
    public AuditInterceptor(ILogger<AuditInterceptor>? logger = null) => this.logger = logger ?? NullLogger<AuditInterceptor>.Instance;

    /// <summary>The calls this interceptor watches; the others never reach it.</summary>
    public IReadOnlyCollection<int>? Syscalls => [Open, Connect, Execve, Creat, Openat, Execveat, Openat2];

    /// <inheritdoc/>
    public SyscallResult Intercept(ISyscallContext context, SyscallInvoker next)
    {
        ref var a = ref context.Arguments;
        var memory = context.Memory;
        var task = context.Task;
        switch (context.Number)
        {
            case Execve or Execveat:
            {
                bool at = context.Number == Execveat;
                string path = ReadPath(memory, at ? a.A1 : a.A0);
                string[] argv = ReadArgv(memory, at ? a.A2 : a.A1);
                // Logged before the call: a successful execve does not come back to this frame
                // with the old image's memory, and its result is the new program running.
                LogExec(task.Pid, task.Name, at ? "execveat" : "execve", path, argv);
                var result = next(context);
                if (result.IsError)
                {
                    LogExecFailed(task.Pid, path, result.Errno);
                }

                return result;
            }

            case Connect:
            {
                string address = DecodeSockaddr(memory, a.A1, a.A2);
                var result = next(context);
                LogConnect(task.Pid, task.Name, address, Describe(result));
                return result;
            }

            default:
            {
                string name;
                string path;
                int flags;
                switch (context.Number)
                {
                    case Open:
                        (name, path, flags) = ("open", ReadPath(memory, a.A0), (int)a.A1);
                        break;
                    case Creat:
                        (name, path, flags) = ("creat", ReadPath(memory, a.A0), 0x241);
                        break;
                    case Openat2:
                        (name, path, flags) = ("openat2", ReadPath(memory, a.A1), ReadHowFlags(memory, a.A2));
                        break;
                    default:
                        (name, path, flags) = ("openat", ReadPath(memory, a.A1), (int)a.A2);
                        break;
                }

                if (IsWrite(flags) && !MayWrite(path))
                {
                    LogDenied(task.Pid, task.Name, name, path, DescribeFlags(flags));
                    return SyscallResult.Error(Errno.EACCES);
                }

                var result = next(context);
                LogOpen(task.Pid, task.Name, name, path, DescribeFlags(flags), Describe(result));
                return result;
            }
        }
    }

    /// <summary>Whether the open flags ask for writing: write or read-write access, O_CREAT or O_TRUNC.</summary>
    public static bool IsWrite(int flags) => (flags & O_ACCMODE) != 0 || (flags & (O_CREAT | O_TRUNC)) != 0;

    /// <summary>Whether <paramref name="path"/> may be opened for writing: under /tmp, or an allowed device.</summary>
    public static bool MayWrite(string path)
    {
        if (!path.StartsWith('/'))
        {
            return false;
        }

        var parts = new List<string>();
        foreach (var part in path.Split('/', StringSplitOptions.RemoveEmptyEntries))
        {
            if (part == ".")
            {
                continue;
            }

            if (part == "..")
            {
                if (parts.Count > 0)
                {
                    parts.RemoveAt(parts.Count - 1);
                }

                continue;
            }

            parts.Add(part);
        }

        string normal = "/" + string.Join('/', parts);
        return (parts.Count >= 2 && parts[0] == "tmp") || AllowedDevices.Contains(normal);
    }

    /// <summary>Open flags as text: <c>O_WRONLY|O_CREAT|O_TRUNC</c>.</summary>
    public static string DescribeFlags(int flags)
    {
        var names = new List<string> { (flags & O_ACCMODE) switch { 0 => "O_RDONLY", 1 => "O_WRONLY", 2 => "O_RDWR", _ => "O_ACCMODE" } };
        (int Bit, string Name)[] known =
        [
            (0x40, "O_CREAT"), (0x80, "O_EXCL"), (0x100, "O_NOCTTY"), (0x200, "O_TRUNC"), (0x400, "O_APPEND"),
            (0x800, "O_NONBLOCK"), (0x10000, "O_DIRECTORY"), (0x20000, "O_NOFOLLOW"), (0x80000, "O_CLOEXEC"),
            (0x200000, "O_PATH"), (0x410000, "O_TMPFILE"),
        ];
        foreach (var (bit, name) in known)
        {
            if ((flags & bit) == bit && (bit != 0x10000 || (flags & 0x410000) != 0x410000))
            {
                names.Add(name);
            }
        }

        return string.Join('|', names);
    }

    private static string Describe(SyscallResult result) => result.IsError ? "-" + result.Errno : result.Raw.ToString(System.Globalization.CultureInfo.InvariantCulture);

    private static string ReadPath(IProcessMemory memory, ulong address)
    {
        try
        {
            return memory.ReadCString(address);
        }
        catch (ErrnoException e)
        {
            return $"<{e.Errno}>";
        }
    }

    private static string[] ReadArgv(IProcessMemory memory, ulong address)
    {
        var argv = new List<string>();
        if (address == 0)
        {
            return [];
        }

        try
        {
            for (int i = 0; i < 256; i++)
            {
                ulong pointer = memory.ReadValue<ulong>(address + (ulong)(8 * i));
                if (pointer == 0)
                {
                    break;
                }

                argv.Add(memory.ReadCString(pointer, 128 * 1024));
            }
        }
        catch (ErrnoException e)
        {
            argv.Add($"<{e.Errno}>");
        }

        return [.. argv];
    }

    private static int ReadHowFlags(IProcessMemory memory, ulong address)
    {
        try
        {
            return (int)memory.ReadValue<ulong>(address);
        }
        catch (ErrnoException)
        {
            return 0;
        }
    }

    /// <summary>A sockaddr as text: <c>ip:port</c>, <c>[ip6]:port</c>, a Unix socket path (<c>@name</c> if abstract).</summary>
    private static string DecodeSockaddr(IProcessMemory memory, ulong address, ulong length)
    {
        if (length < 2 || length > 128)
        {
            return $"<length {length}>";
        }

        var buffer = new byte[(int)length];
        try
        {
            memory.Read(address, buffer);
        }
        catch (ErrnoException e)
        {
            return $"<{e.Errno}>";
        }

        ushort family = BinaryPrimitives.ReadUInt16LittleEndian(buffer);
        ushort port = buffer.Length >= 4 ? BinaryPrimitives.ReadUInt16BigEndian(buffer.AsSpan(2)) : (ushort)0;
        return family switch
        {
            2 when buffer.Length >= 8 => $"{new IPAddress(buffer.AsSpan(4, 4))}:{port}",
            10 when buffer.Length >= 24 => $"[{new IPAddress(buffer.AsSpan(8, 16))}]:{port}",
            1 when buffer.Length > 2 && buffer[2] == 0 => "@" + Encoding.UTF8.GetString(buffer, 3, buffer.Length - 3).TrimEnd('\0'),
            1 => Encoding.UTF8.GetString(buffer, 2, buffer.Length - 2).Split('\0')[0],
            _ => $"<family {family}>",
        };
    }

    [LoggerMessage(EventId = 1, Level = LogLevel.Information, Message = "audit: pid {Pid} ({Command}) {Syscall} {Path} argv={Argv}")]
    private partial void LogExec(int pid, string command, string syscall, string path, string[] argv);

    [LoggerMessage(EventId = 2, Level = LogLevel.Information, Message = "audit: pid {Pid} exec {Path} failed: {Errno}")]
    private partial void LogExecFailed(int pid, string path, Errno errno);

    [LoggerMessage(EventId = 3, Level = LogLevel.Information, Message = "audit: pid {Pid} ({Command}) {Syscall} {Path} {Flags} = {Result}")]
    private partial void LogOpen(int pid, string command, string syscall, string path, string flags, string result);

    [LoggerMessage(EventId = 4, Level = LogLevel.Information, Message = "audit: pid {Pid} ({Command}) connect {Address} = {Result}")]
    private partial void LogConnect(int pid, string command, string address, string result);

    [LoggerMessage(EventId = 5, Level = LogLevel.Warning, Message = "audit: pid {Pid} ({Command}) {Syscall} {Path} {Flags} denied: writes are allowed under /tmp only")]
    private partial void LogDenied(int pid, string command, string syscall, string path, string flags);
}
