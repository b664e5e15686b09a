using AppKernel.Syscalls;
using AppKernel.Vfs;

namespace AppKernel.Sentry.Fs.Dev.Pts;

/// <summary>An open /dev/ptmx: the master side of a new <see cref="Terminal"/>.</summary>
internal sealed class PtyMaster(Terminal terminal, DevPtsFileSystem pts, IInode? inode) : IFileOperations
{
    public Terminal Terminal => terminal;

    public IInode? Inode => inode;

    public bool IsStream => true;

    public WaitQueue? Waiters => terminal.MasterWaiters;

    public long Read(Span<byte> buffer, ref long offset) => terminal.ReadFromMaster(buffer);

    public long Write(ReadOnlySpan<byte> buffer, ref long offset, bool append) => terminal.WriteFromMaster(buffer);

    public PollEvents Poll(PollEvents mask) => terminal.PollMaster(mask);

    public long Ioctl(uint request, ulong argument, ISyscallContext context) =>
        TerminalIoctls.Handle(terminal, pts, master: true, request, argument, context);

    public void Release()
    {
        terminal.CloseMaster();
        pts.Remove(terminal);
    }
}

/// <summary>An open /dev/pts/N (or /dev/tty naming it): the program's side of a <see cref="Terminal"/>.</summary>
internal sealed class PtySlave(Terminal terminal, DevPtsFileSystem pts, IInode? inode) : IFileOperations, Vfs.ISelfBlockingRead
{
    public Terminal Terminal => terminal;

    public IInode? Inode => inode;

    public bool IsStream => true;

    public WaitQueue? Waiters => terminal.SlaveWaiters;

    public long Read(Span<byte> buffer, ref long offset) => terminal.ReadFromSlave(buffer);

    public long Read(Kernel.KernelTask task, Span<byte> buffer, bool nonBlocking) => terminal.ReadFromSlave(task, buffer, nonBlocking);

    public long Write(ReadOnlySpan<byte> buffer, ref long offset, bool append) => terminal.WriteFromSlave(buffer);

    public PollEvents Poll(PollEvents mask) => terminal.PollSlave(mask);

    public long Ioctl(uint request, ulong argument, ISyscallContext context) =>
        TerminalIoctls.Handle(terminal, pts, master: false, request, argument, context);

    public void Release() => terminal.CloseSlave();
}
