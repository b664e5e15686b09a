using AppKernel.Sentry.Abi;
using AppKernel.Sentry.Native;
using AppKernel.Syscalls;
using AppKernel.Vfs;
using FileMode = AppKernel.Vfs.FileMode;

namespace AppKernel.Sentry.Vfs;

/// <summary>
/// A host file the Sentry owns and lends to the program: the runner's stdio or a pipe to the host
/// application. Pipes and terminals are reopened non-blocking (a private description, so the
/// host's own stays as it was) and waited on through the <see cref="HostPoller"/>.
/// </summary>
internal sealed unsafe class HostFile : IFileOperations, IInode, IFileSystem
{
    private readonly int fd;
    private readonly HostPoller poller;
    private readonly bool stream;
    private readonly bool isTerminal;
    private readonly OutputBudget? budget;
    private int released;
    private int? foregroundGroup;
    private const uint TIOCNOTTY = 0x5422;
    private const int KernelTermiosSize = 36;

    private HostFile(int fd, HostPoller poller, bool stream, bool isTerminal, OutputBudget? budget)
    {
        this.fd = fd;
        this.poller = poller;
        this.stream = stream;
        this.isTerminal = isTerminal;
        this.budget = budget;
        if (stream)
        {
            poller.Watch(fd, Waiters);
        }
    }

    /// <summary>Wraps a copy of host fd <paramref name="hostFd"/> (the caller keeps its own).</summary>
    public static HostFile Open(int hostFd, bool write, HostPoller poller, OutputBudget? budget = null)
    {
        LibC.HostStat stat;
        if (LibC.Fstat(hostFd, &stat) != 0)
        {
            throw LibC.HostError($"fstat of host fd {hostFd}");
        }

        uint type = stat.Mode & LibC.S_IFMT;
        bool stream = type is LibC.S_IFIFO or LibC.S_IFCHR or LibC.S_IFSOCK;
        int fd = -1;
        if (type is LibC.S_IFIFO or LibC.S_IFCHR)
        {
            // A private non-blocking description of the same pipe or terminal.
            fd = LibC.Open($"/proc/self/fd/{hostFd}", (write ? LibC.O_WRONLY : LibC.O_RDONLY) | LibC.O_NONBLOCK | LibC.O_CLOEXEC, 0);
        }

        if (fd < 0)
        {
            fd = LibC.Fcntl(hostFd, 1030 /* F_DUPFD_CLOEXEC */, 3);
            if (fd < 0)
            {
                throw LibC.HostError($"dup of host fd {hostFd}");
            }
        }

        byte* termios = stackalloc byte[64];
        bool terminal = type == LibC.S_IFCHR && LibC.Ioctl(fd, LinuxConstants.TCGETS, termios) == 0;
        return new HostFile(fd, poller, stream, terminal, budget);
    }

    public WaitQueue Waiters { get; } = new();

    /// <summary>Where a regular host file's offset stands now (the description starts there).</summary>
    public long CurrentOffset => stream ? 0 : Math.Max(0, LibC.Lseek(fd, 0, 1));

    WaitQueue? IFileOperations.Waiters => stream ? Waiters : null;

    public IInode? Inode => this;

    public bool IsStream => stream;

    public long Read(Span<byte> buffer, ref long offset)
    {
        fixed (byte* p = buffer)
        {
            while (true)
            {
                // A regular host file shares its offset with the host's own description (an
                // inherited "> file" keeps appending where the host left off): seek, then read.
                if (!stream)
                {
                    LibC.Lseek(fd, offset, 0);
                }

                nint n = LibC.Read(fd, p, (nuint)buffer.Length);
                if (n >= 0)
                {
                    if (!stream)
                    {
                        offset = LibC.Lseek(fd, 0, 1);
                    }

                    return n;
                }

                int errno = LibC.Errno;
                if (errno == LibC.EINTR)
                {
                    continue;
                }

                throw ErrnoException.Of((Errno)errno);
            }
        }
    }

    public long Write(ReadOnlySpan<byte> buffer, ref long offset, bool append)
    {
        if (budget is not null)
        {
            buffer = buffer[..(int)budget.Take(buffer.Length)];
        }

        fixed (byte* p = buffer)
        {
            while (true)
            {
                if (!stream)
                {
                    LibC.Lseek(fd, offset, 0);
                }

                nint n = LibC.Write(fd, p, (nuint)buffer.Length);
                if (n >= 0)
                {
                    if (!stream)
                    {
                        offset = LibC.Lseek(fd, 0, 1);
                    }

                    budget?.Return(buffer.Length - (int)n);
                    return n;
                }

                int errno = LibC.Errno;
                if (errno == LibC.EINTR)
                {
                    continue;
                }

                budget?.Return(buffer.Length);
                throw ErrnoException.Of((Errno)errno);
            }
        }
    }

    public PollEvents Poll(PollEvents mask)
    {
        if (!stream)
        {
            return mask & (PollEvents.In | PollEvents.Out | PollEvents.ReadNormal | PollEvents.WriteNormal);
        }

        var pfd = new LibC.PollFd { Fd = fd, Events = LibC.POLLIN | LibC.POLLOUT };
        LibC.Poll(&pfd, 1, 0);
        PollEvents ready = 0;
        if ((pfd.Revents & LibC.POLLIN) != 0) ready |= PollEvents.In | PollEvents.ReadNormal;
        if ((pfd.Revents & LibC.POLLOUT) != 0) ready |= PollEvents.Out | PollEvents.WriteNormal;
        if ((pfd.Revents & LibC.POLLERR) != 0) ready |= PollEvents.Error;
        if ((pfd.Revents & LibC.POLLHUP) != 0) ready |= PollEvents.HangUp;
        return ready & (mask | PollEvents.Error | PollEvents.HangUp);
    }

    public long Ioctl(uint request, ulong argument, ISyscallContext context)
    {
        switch (request)
        {
            case LinuxConstants.TCGETS or LinuxConstants.TIOCGWINSZ when isTerminal:
            {
                // The kernel's struct termios is 36 bytes (NCCS 19); glibc's larger one is its own.
                int size = request == LinuxConstants.TCGETS ? KernelTermiosSize : 8;
                byte* data = stackalloc byte[64];
                if (LibC.Ioctl(fd, request, data) != 0)
                {
                    throw ErrnoException.Of((Errno)LibC.Errno);
                }

                context.Memory.Write(argument, new ReadOnlySpan<byte>(data, size));
                return 0;
            }

            case LinuxConstants.TCSETS or LinuxConstants.TCSETSW or LinuxConstants.TCSETSF or LinuxConstants.TIOCSWINSZ when isTerminal:
            {
                int size = request == LinuxConstants.TIOCSWINSZ ? 8 : KernelTermiosSize;
                byte* data = stackalloc byte[64];
                context.Memory.Read(argument, new Span<byte>(data, size));
                if (LibC.Ioctl(fd, request, data) != 0)
                {
                    throw ErrnoException.Of((Errno)LibC.Errno);
                }

                return 0;
            }

            case LinuxConstants.TIOCGPGRP when isTerminal:
                context.Memory.WriteValue(argument, foregroundGroup ?? ((Kernel.KernelTask)context).Group.ProcessGroup);
                return 0;
            case LinuxConstants.TIOCSPGRP when isTerminal:
            {
                // The foreground process group must exist in the caller's session (EPERM otherwise).
                var task = (Kernel.KernelTask)context;
                int group = context.Memory.ReadValue<int>(argument);
                if (group <= 0)
                {
                    throw ErrnoException.Of(Errno.EINVAL);
                }

                if (!task.Kernel.Pids.Groups().Any(g => g.ProcessGroup == group && g.Session == task.Group.Session))
                {
                    throw ErrnoException.Of(Errno.EPERM);
                }

                foregroundGroup = group;
                return 0;
            }

            case LinuxConstants.TIOCGSID when isTerminal:
                context.Memory.WriteValue(argument, ((Kernel.KernelTask)context).Group.Session);
                return 0;
            case LinuxConstants.TIOCSCTTY or TIOCNOTTY when isTerminal:
                // The host terminal is every sandboxed process's controlling terminal already.
                return 0;
            case LinuxConstants.FIONREAD when stream:
            {
                int available;
                if (LibC.Ioctl(fd, LinuxConstants.FIONREAD, &available) != 0)
                {
                    throw ErrnoException.Of((Errno)LibC.Errno);
                }

                context.Memory.WriteValue(argument, available);
                return 0;
            }

            default:
                throw ErrnoException.Of(Errno.ENOTTY);
        }
    }

    public void Release()
    {
        if (Interlocked.Exchange(ref released, 1) == 0)
        {
            poller.Unwatch(fd);
            LibC.Close(fd);
        }
    }

    // The file as an anonymous inode: fstat shows the host file's type, size and times.
    IFileSystem IInode.FileSystem => this;

    public InodeAttributes GetAttributes()
    {
        LibC.HostStat stat;
        LibC.Fstat(fd, &stat);
        return new InodeAttributes
        {
            Ino = stat.Ino,
            Mode = (FileMode)stat.Mode,
            Links = (uint)stat.Nlink,
            Uid = (int)stat.Uid,
            Gid = (int)stat.Gid,
            Rdev = stat.Rdev,
            Size = stat.Size,
            BlockSize = (int)stat.BlockSize,
            Blocks = stat.Blocks,
            AccessTime = new Timespec(stat.Atime, stat.AtimeNsec),
            ModifyTime = new Timespec(stat.Mtime, stat.MtimeNsec),
            ChangeTime = new Timespec(stat.Ctime, stat.CtimeNsec),
        };
    }

    IFileOperations IInode.Open(OpenFlags flags) => throw ErrnoException.Of(Errno.ENXIO);

    string IFileSystem.TypeName => "hostfile";

    IInode IFileSystem.Root => this;

    FileSystemStatistics IFileSystem.GetStatistics() => new(0, 4096, 0, 0, 0, 0, 0);
}

/// <summary>The output limit shared by a sandbox's stdout and stderr: past it, writes fail with EFBIG.</summary>
internal sealed class OutputBudget(long limit)
{
    private long left = limit;

    /// <summary>Reserves up to <paramref name="wanted"/> bytes; EFBIG when nothing is left.</summary>
    public long Take(int wanted)
    {
        while (true)
        {
            long current = Volatile.Read(ref left);
            if (current <= 0)
            {
                Exceeded = true;
                throw ErrnoException.Of(Errno.EFBIG);
            }

            long take = Math.Min(current, wanted);
            if (Interlocked.CompareExchange(ref left, current - take, current) == current)
            {
                return take;
            }
        }
    }

    public void Return(int unused)
    {
        if (unused > 0)
        {
            Interlocked.Add(ref left, unused);
        }
    }

    public bool Exceeded { get; private set; }
}
