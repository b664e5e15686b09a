using AppKernel.Memory;
using AppKernel.Sentry.Fs.Tmpfs;
using AppKernel.Vfs;
using FileMode = AppKernel.Vfs.FileMode;

namespace AppKernel.Sentry.Fs.Dev;

/// <summary>Builds a container-style /dev: device nodes, the fd symlinks, and the pts and shm mount points.</summary>
public static class DevDirectory
{
    /// <summary>crw-rw-rw-: the mode of the memory devices.</summary>
    public const FileMode DeviceMode = FileMode.CharDevice | (FileMode)0x1B6; // 0666

    /// <summary>A tmpfs with a root of mode 0755 (as /dev is mounted in containers), populated.</summary>
    public static TmpfsFileSystem CreateFileSystem(IMemoryFile memoryFile)
    {
        var fs = new TmpfsFileSystem(memoryFile, TmpfsOptions.Parse("mode=755"));
        Populate(fs.Root);
        return fs;
    }

    /// <summary>
    /// Creates, in <paramref name="directory"/>: null, zero, full, random, urandom, tty and ptmx (0666
    /// character devices); symlinks fd → /proc/self/fd, stdin/stdout/stderr → /proc/self/fd/0, 1, 2; and the
    /// empty directories pts (0755) and shm (01777), on which the VFS mounts devpts and a tmpfs.
    /// Names that already exist are left as they are.
    /// </summary>
    /// <param name="directory">The /dev directory.</param>
    /// <param name="owner">Who owns the new entries (root when null).</param>
    public static void Populate(IInode directory, FileOwner? owner = null)
    {
        ArgumentNullException.ThrowIfNull(directory);
        var who = owner ?? new FileOwner(0, 0);
        foreach (var (name, major, minor) in CharacterDevices.Known)
        {
            IgnoreExisting(() => directory.CreateNode(name, DeviceMode, DeviceNumbers.Make(major, minor), who));
        }

        IgnoreExisting(() => directory.CreateNode("tty", DeviceMode, DeviceNumbers.Make(5, 0), who));
        IgnoreExisting(() => directory.CreateNode("ptmx", DeviceMode, DeviceNumbers.Make(5, 2), who));
        IgnoreExisting(() => directory.CreateSymlink("fd", "/proc/self/fd", who));
        IgnoreExisting(() => directory.CreateSymlink("stdin", "/proc/self/fd/0", who));
        IgnoreExisting(() => directory.CreateSymlink("stdout", "/proc/self/fd/1", who));
        IgnoreExisting(() => directory.CreateSymlink("stderr", "/proc/self/fd/2", who));
        IgnoreExisting(() => directory.CreateDirectory("pts", (FileMode)0x1ED, who)); // 0755
        IgnoreExisting(() => directory.CreateDirectory("shm", (FileMode)0x3FF, who)); // 01777
    }

    private static IInode? IgnoreExisting(Func<IInode> create)
    {
        try
        {
            return create();
        }
        catch (ErrnoException e) when (e.Errno == Errno.EEXIST)
        {
            return null;
        }
    }
}
