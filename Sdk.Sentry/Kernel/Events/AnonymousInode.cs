using AppKernel.Vfs;
using FileMode = AppKernel.Vfs.FileMode;

namespace AppKernel.Sentry.Kernel.Events;

/// <summary>
/// Linux's anon_inode: the one inode every epoll, eventfd, timerfd and signalfd shares, so fstat
/// shows what Linux shows (mode 0600 with no file type, one link, owned by root) and fstatfs
/// the anon_inodefs magic.
/// </summary>
internal sealed class AnonymousInode : IInode, IFileSystem
{
    private const long AnonInodeFsMagic = 0x09041934;

    public static AnonymousInode Instance { get; } = new();

    private readonly Timespec created = Timespec.Now;

    private AnonymousInode()
    {
    }

    public IFileSystem FileSystem => this;

    public InodeAttributes GetAttributes() => new()
    {
        Ino = 1,
        Mode = (FileMode)0x180, // 0600, no type
        Links = 1,
        BlockSize = 4096,
        AccessTime = created,
        ModifyTime = created,
        ChangeTime = created,
    };

    public IFileOperations Open(OpenFlags flags) => throw ErrnoException.Of(Errno.ENXIO);

    string IFileSystem.TypeName => "anon_inodefs";

    IInode IFileSystem.Root => this;

    FileSystemStatistics IFileSystem.GetStatistics() => new(AnonInodeFsMagic, 4096, 0, 0, 0, 0, 0);
}
