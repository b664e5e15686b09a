using AppKernel.Vfs;

namespace AppKernel.Sentry.Vfs;

/// <summary>Character devices by major:minor; opening a device node asks here (ENXIO for unknown numbers, as Linux).</summary>
internal sealed class DeviceRegistry
{
    private readonly Dictionary<(uint Major, uint Minor), Func<OpenFlags, IInode, IFileOperations>> devices = new();

    private readonly Dictionary<uint, Func<uint, OpenFlags, IInode, IFileOperations>> majors = new();

    public void Register(uint major, uint minor, Func<OpenFlags, IInode, IFileOperations> open) => devices[(major, minor)] = open;

    /// <summary>Every minor number of <paramref name="major"/> (devices that come and go, like /dev/pts/N).</summary>
    public void RegisterMajor(uint major, Func<uint, OpenFlags, IInode, IFileOperations> open) => majors[major] = open;

    public IFileOperations Open(uint major, uint minor, OpenFlags flags, IInode inode) =>
        devices.TryGetValue((major, minor), out var open) ? open(flags, inode)
        : majors.TryGetValue(major, out var any) ? any(minor, flags, inode)
        : throw ErrnoException.Of(Errno.ENXIO);
}
