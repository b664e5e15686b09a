using AppKernel.Vfs;

namespace AppKernel.Sentry.Vfs;

/// <summary>Character devices by major:minor; opening a device node asks here (ENXIO for unknown numbers, as Linux).</summary>
internal sealed class DeviceRegistry
{
    private readonly Dictionary<(uint Major, uint Minor), Func<OpenFlags, IInode, IFileOperations>> devices = new();

    public void Register(uint major, uint minor, Func<OpenFlags, IInode, IFileOperations> open) => devices[(major, minor)] = open;

    public IFileOperations Open(uint major, uint minor, OpenFlags flags, IInode inode) =>
        devices.TryGetValue((major, minor), out var open) ? open(flags, inode) : throw ErrnoException.Of(Errno.ENXIO);
}
