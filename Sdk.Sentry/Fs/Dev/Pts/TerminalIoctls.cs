using System.Runtime.InteropServices;
using AppKernel.Sentry.Abi;
using AppKernel.Sentry.Kernel;
using AppKernel.Sentry.Syscalls;
using AppKernel.Sentry.Vfs;
using AppKernel.Syscalls;
using AppKernel.Vfs;

namespace AppKernel.Sentry.Fs.Dev.Pts;

/// <summary>
/// The terminal ioctls (tty_ioctl(4)) of both sides of a pseudo-terminal. On the master the
/// settings requests act on the slave's terminal, as Linux's pty driver does; the job-control
/// requests check that the terminal is the caller's controlling terminal.
/// </summary>
internal static class TerminalIoctls
{
    private const uint TCSBRK = 0x5409, TCXONC = 0x540A, TCFLSH = 0x540B, TIOCEXCL = 0x540C, TIOCNXCL = 0x540D,
        TIOCOUTQ = 0x5411, TIOCPKT = 0x5420, TIOCNOTTY = 0x5422, TCSBRKP = 0x5425, TIOCSBRK = 0x5427, TIOCCBRK = 0x5428,
        TIOCGPTN = 0x80045430, TIOCSPTLCK = 0x40045431, TIOCGPKT = 0x80045438, TIOCGPTLCK = 0x80045439,
        TIOCGEXCL = 0x80045440, TIOCGPTPEER = 0x5441;

    private const int CAP_SYS_ADMIN = 21;

    public static long Handle(Terminal terminal, DevPtsFileSystem pts, bool master, uint request, ulong argument, ISyscallContext context)
    {
        var task = (KernelTask)context;
        var memory = context.Memory;
        switch (request)
        {
            case LinuxConstants.TCGETS:
            {
                var termios = terminal.GetTermios();
                memory.Write(argument, MemoryMarshal.AsBytes(new ReadOnlySpan<Termios>(in termios)));
                return 0;
            }

            case LinuxConstants.TCSETS or LinuxConstants.TCSETSW or LinuxConstants.TCSETSF:
            {
                Termios termios = default;
                memory.Read(argument, MemoryMarshal.AsBytes(new Span<Termios>(ref termios)));
                if (!master)
                {
                    terminal.CheckJobControl(task, Signals.SIGTTOU);
                }

                terminal.SetTermios(termios, flushInput: request == LinuxConstants.TCSETSF);
                return 0;
            }

            case LinuxConstants.TIOCGWINSZ:
                memory.WriteValue(argument, terminal.GetWindowSize());
                return 0;
            case LinuxConstants.TIOCSWINSZ:
                terminal.SetWindowSize(memory.ReadValue<WindowSize>(argument));
                return 0;
            case LinuxConstants.FIONREAD:
                memory.WriteValue(argument, master ? terminal.OutputPending : terminal.InputAvailable);
                return 0;
            case TIOCOUTQ:
                memory.WriteValue(argument, master ? 0 : terminal.OutputPending);
                return 0;
            case TCFLSH:
                if (argument > 2)
                {
                    throw ErrnoException.Of(Errno.EINVAL);
                }

                terminal.Flush((int)argument);
                return 0;
            case TCXONC:
                return argument <= 3 ? 0 : throw ErrnoException.Of(Errno.EINVAL);
            case TCSBRK or TCSBRKP or TIOCSBRK or TIOCCBRK or TIOCEXCL or TIOCNXCL:
                return 0; // nothing to drain or break on a pseudo-terminal
            case TIOCGEXCL:
                memory.WriteValue(argument, 0);
                return 0;
            case LinuxConstants.TIOCGPGRP:
                if (!master && task.Group.ControllingTerminal != terminal)
                {
                    throw ErrnoException.Of(Errno.ENOTTY);
                }

                memory.WriteValue(argument, terminal.ForegroundGroup);
                return 0;
            case LinuxConstants.TIOCSPGRP:
                SetForegroundGroup(terminal, task, memory.ReadValue<int>(argument));
                return 0;
            case LinuxConstants.TIOCGSID:
                if ((!master && task.Group.ControllingTerminal != terminal) || terminal.Session == 0)
                {
                    throw ErrnoException.Of(Errno.ENOTTY);
                }

                memory.WriteValue(argument, terminal.Session);
                return 0;
            case LinuxConstants.TIOCSCTTY:
                SetControllingTerminal(terminal, task, argument);
                return 0;
            case TIOCNOTTY:
                ReleaseControllingTerminal(terminal, task);
                return 0;
            case TIOCGPTN when master:
                memory.WriteValue(argument, (uint)terminal.Index);
                return 0;
            case TIOCSPTLCK when master:
                terminal.Locked = memory.ReadValue<int>(argument) != 0;
                return 0;
            case TIOCGPTLCK when master:
                memory.WriteValue(argument, terminal.Locked ? 1 : 0);
                return 0;
            case TIOCPKT when master:
                terminal.PacketMode = memory.ReadValue<int>(argument) != 0;
                return 0;
            case TIOCGPKT when master:
                memory.WriteValue(argument, terminal.PacketMode ? 1 : 0);
                return 0;
            case TIOCGPTPEER when master:
                return OpenPeer(terminal, pts, task, (OpenFlags)(uint)argument);
            default:
                throw ErrnoException.Of(Errno.ENOTTY);
        }
    }

    private static void SetForegroundGroup(Terminal terminal, KernelTask task, int processGroup)
    {
        var group = task.Group;
        if (group.ControllingTerminal != terminal || terminal.Session != group.Session)
        {
            throw ErrnoException.Of(Errno.ENOTTY);
        }

        terminal.CheckJobControl(task, Signals.SIGTTOU);
        if (processGroup < 0)
        {
            throw ErrnoException.Of(Errno.EINVAL);
        }

        var pids = task.Kernel.Pids;
        lock (pids.Gate)
        {
            var members = pids.Groups().Where(g => g.ProcessGroup == processGroup && !g.Exiting).ToArray();
            if (members.Length == 0)
            {
                throw ErrnoException.Of(Errno.ESRCH);
            }

            if (members[0].Session != group.Session)
            {
                throw ErrnoException.Of(Errno.EPERM);
            }

            terminal.ForegroundGroup = processGroup;
        }
    }

    private static void SetControllingTerminal(Terminal terminal, KernelTask task, ulong steal)
    {
        var group = task.Group;
        var pids = task.Kernel.Pids;
        int oldSession = 0, oldForeground = 0;
        lock (pids.Gate)
        {
            bool leader = group.Session == group.Pid;
            if (leader && terminal.Session == group.Session)
            {
                return; // already ours
            }

            if (!leader || group.ControllingTerminal is not null)
            {
                throw ErrnoException.Of(Errno.EPERM);
            }

            if (terminal.Session != 0)
            {
                if (steal != 1 || !task.Credentials.HasCapability(CAP_SYS_ADMIN))
                {
                    throw ErrnoException.Of(Errno.EPERM);
                }

                oldSession = terminal.Session;
                oldForeground = terminal.ForegroundGroup;
            }
        }

        if (oldSession != 0)
        {
            terminal.Disassociate(oldSession, oldForeground, signalLeader: false);
        }

        lock (pids.Gate)
        {
            terminal.Attach(group);
        }
    }

    private static void ReleaseControllingTerminal(Terminal terminal, KernelTask task)
    {
        var group = task.Group;
        if (group.ControllingTerminal != terminal)
        {
            throw ErrnoException.Of(Errno.ENOTTY);
        }

        if (group.Session == group.Pid)
        {
            terminal.Disassociate(terminal.Session, terminal.ForegroundGroup, signalLeader: false);
        }
        else
        {
            lock (task.Kernel.Pids.Gate)
            {
                group.ControllingTerminal = null;
            }
        }
    }

    /// <summary>TIOCGPTPEER: opens the slave from the master without a path lookup.</summary>
    private static long OpenPeer(Terminal terminal, DevPtsFileSystem pts, KernelTask task, OpenFlags flags)
    {
        const OpenFlags allowed = OpenFlags.AccessMask | OpenFlags.NoControllingTty | OpenFlags.NonBlocking | OpenFlags.CloseOnExec;
        if ((flags & ~allowed) != 0)
        {
            throw ErrnoException.Of(Errno.EINVAL);
        }

        // The description names /dev/pts/N of the sandbox's devpts, so fstat matches stat of that path (ttyname checks).
        string name = $"/dev/pts/{terminal.Index}";
        var vfs = task.Kernel.Vfs;
        VfsPath? path = null;
        try
        {
            path = vfs.Resolve(new PathContext(task.Credentials, vfs.RootPath, vfs.RootPath, task), name, followFinal: false).Path;
        }
        catch (ErrnoException)
        {
            // devpts is not where it usually is: the description stays anonymous.
        }

        var slave = pts.OpenSlave(terminal, task, flags, path?.Inode ?? pts.SlaveInode(terminal));
        var description = new FileDescription(slave, path, flags & ~OpenFlags.CloseOnExec, name);
        return AnonymousFiles.Install(task, description, (flags & OpenFlags.CloseOnExec) != 0);
    }
}
