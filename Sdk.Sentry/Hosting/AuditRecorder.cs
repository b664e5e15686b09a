using System.Buffers.Binary;
using System.Net;
using System.Text;
using System.Threading.Channels;
using AppKernel.Sentry.Kernel;
using AppKernel.Syscalls;

namespace AppKernel.Sentry.Hosting;

/// <summary>
/// A sandbox's audit events (<see cref="ISandbox.Events"/>): exec, open and connect calls with
/// their decoded arguments, and any other call refused with EACCES or EPERM. Arguments are read
/// before the call (an execve that succeeds replaces the memory they were in); the event is
/// written when it returns, into a bounded channel that drops (and counts) what does not fit,
/// so a slow reader never holds a program back.
/// </summary>
internal sealed class AuditRecorder
{
    private const int Execve = 59, Execveat = 322, Open = 2, Openat = 257, Openat2 = 437, Creat = 85, Connect = 42;
    private const int MaxArguments = 64;

    private readonly Channel<SandboxEvent> channel;
    private readonly ISyscallTable table;
    private long dropped;

    public AuditRecorder(int capacity, ISyscallTable table)
    {
        this.table = table;
        channel = Channel.CreateBounded<SandboxEvent>(
            new BoundedChannelOptions(capacity) { FullMode = BoundedChannelFullMode.DropWrite, SingleReader = false, SingleWriter = false },
            _ => Interlocked.Increment(ref dropped));
    }

    public ChannelReader<SandboxEvent> Reader => channel.Reader;

    public long Dropped => Interlocked.Read(ref dropped);

    /// <summary>No more events (the sandbox is gone): readers finish once they drain the channel.</summary>
    public void Complete() => channel.Writer.TryComplete();

    /// <summary>The arguments of a watched call, read before it runs; null for other calls.</summary>
    public Pending? Begin(ISyscallContext call)
    {
        ref var a = ref call.Arguments;
        var memory = call.Memory;
        return call.Number switch
        {
            Execve => new Pending(SandboxEventKind.Exec, ReadPath(memory, a.A0), 0, ReadArgv(memory, a.A1), null),
            Execveat => new Pending(SandboxEventKind.Exec, ReadPath(memory, a.A1), 0, ReadArgv(memory, a.A2), null),
            Open => new Pending(SandboxEventKind.Open, ReadPath(memory, a.A0), (int)a.A1, null, null),
            Openat => new Pending(SandboxEventKind.Open, ReadPath(memory, a.A1), (int)a.A2, null, null),
            Openat2 => new Pending(SandboxEventKind.Open, ReadPath(memory, a.A1), ReadOpenHowFlags(memory, a.A2), null, null),
            Creat => new Pending(SandboxEventKind.Open, ReadPath(memory, a.A0), 0x241, null, null),
            Connect => new Pending(SandboxEventKind.Connect, null, 0, null, DecodeSockaddr(memory, a.A1, a.A2)),
            _ => null,
        };
    }

    /// <summary>Records the event of a call that returned with <paramref name="result"/>.</summary>
    public void End(int number, ITaskInfo task, Pending? pending, SyscallResult result)
    {
        Errno? errno = result.IsError && !result.IsNoReturn ? result.Errno : null;
        if (pending is null)
        {
            if (errno is not (Errno.EACCES or Errno.EPERM))
            {
                return;
            }

            Write(SandboxEventKind.Denied, number, task, errno, null, 0, null, null);
            return;
        }

        Write(pending.Kind, number, task, errno, pending.Path, pending.Flags, pending.Arguments, pending.Address);
    }

    private void Write(SandboxEventKind kind, int number, ITaskInfo task, Errno? errno, string? path, int flags, IReadOnlyList<string>? arguments, string? address)
    {
        string name = (uint)number < (uint)table.Entries.Count ? table.Entries[number].Name : $"syscall_{number}";
        channel.Writer.TryWrite(new SandboxEvent
        {
            Kind = kind,
            Timestamp = DateTimeOffset.UtcNow,
            Pid = task.Pid,
            Tid = task.Tid,
            Command = task.Name,
            Syscall = number,
            SyscallName = name,
            Path = path,
            Flags = flags,
            Arguments = arguments,
            Address = address,
            Errno = errno,
        });
    }

    private static string? ReadPath(IProcessMemory memory, ulong address)
    {
        try
        {
            return memory.ReadCString(address);
        }
        catch (ErrnoException)
        {
            return null;
        }
    }

    private static IReadOnlyList<string>? ReadArgv(IProcessMemory memory, ulong address)
    {
        if (address == 0)
        {
            return [];
        }

        var list = new List<string>();
        try
        {
            for (int i = 0; i < MaxArguments; i++)
            {
                ulong pointer = memory.ReadValue<ulong>(address + (ulong)(i * 8));
                if (pointer == 0)
                {
                    break;
                }

                list.Add(memory.ReadCString(pointer, 128 * 1024));
            }
        }
        catch (ErrnoException)
        {
        }

        return list;
    }

    private static int ReadOpenHowFlags(IProcessMemory memory, ulong address)
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

    /// <summary>A sockaddr as text: <c>ip:port</c>, <c>[ip6]:port</c>, a Unix path (<c>@name</c> when abstract), or the family number.</summary>
    internal static string? DecodeSockaddr(IProcessMemory memory, ulong address, ulong length)
    {
        if (address == 0 || length < 2 || length > 128)
        {
            return null;
        }

        Span<byte> buffer = stackalloc byte[(int)length];
        try
        {
            memory.Read(address, buffer);
        }
        catch (ErrnoException)
        {
            return null;
        }

        ushort family = BinaryPrimitives.ReadUInt16LittleEndian(buffer);
        switch (family)
        {
            case 2 when buffer.Length >= 8: // AF_INET
                return $"{new IPAddress(buffer.Slice(4, 4))}:{BinaryPrimitives.ReadUInt16BigEndian(buffer[2..])}";
            case 10 when buffer.Length >= 24: // AF_INET6
                return $"[{new IPAddress(buffer.Slice(8, 16))}]:{BinaryPrimitives.ReadUInt16BigEndian(buffer[2..])}";
            case 1: // AF_UNIX
                var path = buffer[2..];
                if (path.Length > 0 && path[0] == 0)
                {
                    return "@" + Encoding.UTF8.GetString(path[1..]).TrimEnd('\0');
                }

                int end = path.IndexOf((byte)0);
                return Encoding.UTF8.GetString(end >= 0 ? path[..end] : path);
            default:
                return $"family {family}";
        }
    }

    /// <summary>A watched call's arguments, read before it ran.</summary>
    internal sealed record Pending(SandboxEventKind Kind, string? Path, int Flags, IReadOnlyList<string>? Arguments, string? Address);
}
