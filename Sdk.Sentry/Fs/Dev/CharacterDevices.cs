using System.Security.Cryptography;
using AppKernel.Vfs;

namespace AppKernel.Sentry.Fs.Dev;

/// <summary>Linux's device numbers as <c>st_rdev</c> and mknod(2) carry them (glibc's <c>makedev</c> encoding).</summary>
public static class DeviceNumbers
{
    /// <summary>Combines a major and a minor number.</summary>
    public static ulong Make(uint major, uint minor) =>
        ((ulong)(major & 0xFFFFF000) << 32) | ((ulong)(major & 0xFFF) << 8)
        | ((ulong)(minor & 0xFFFFFF00) << 12) | (minor & 0xFF);

    /// <summary>The major number of <paramref name="device"/>.</summary>
    public static uint Major(ulong device) => (uint)(((device >> 32) & 0xFFFFF000) | ((device >> 8) & 0xFFF));

    /// <summary>The minor number of <paramref name="device"/>.</summary>
    public static uint Minor(ulong device) => (uint)(((device >> 12) & 0xFFFFFF00) | (device & 0xFF));
}

/// <summary>
/// The memory character devices (major 1): /dev/null (1:3), zero (1:5), full (1:7), random (1:8)
/// and urandom (1:9). The VFS calls <see cref="TryOpen(uint, uint, OpenFlags, IInode?, out IFileOperations)"/>
/// when a program opens a character device node. Mapping /dev/zero is not offered here: as in Linux,
/// the memory manager should treat mmap of /dev/zero as anonymous (private) or shared anonymous memory.
/// </summary>
public static class CharacterDevices
{
    /// <summary>The major number of the memory devices.</summary>
    public const uint MemoryMajor = 1;

    /// <summary>/dev/null's minor number.</summary>
    public const uint NullMinor = 3;

    /// <summary>/dev/zero's minor number.</summary>
    public const uint ZeroMinor = 5;

    /// <summary>/dev/full's minor number.</summary>
    public const uint FullMinor = 7;

    /// <summary>/dev/random's minor number.</summary>
    public const uint RandomMinor = 8;

    /// <summary>/dev/urandom's minor number.</summary>
    public const uint UrandomMinor = 9;

    /// <summary>The devices and their names in /dev.</summary>
    public static IReadOnlyList<(string Name, uint Major, uint Minor)> Known { get; } =
    [
        ("null", MemoryMajor, NullMinor),
        ("zero", MemoryMajor, ZeroMinor),
        ("full", MemoryMajor, FullMinor),
        ("random", MemoryMajor, RandomMinor),
        ("urandom", MemoryMajor, UrandomMinor),
    ];

    /// <summary>True when <paramref name="major"/>:<paramref name="minor"/> is a device this registry opens.</summary>
    public static bool IsKnown(uint major, uint minor) =>
        major == MemoryMajor && minor is NullMinor or ZeroMinor or FullMinor or RandomMinor or UrandomMinor;

    /// <summary>Opens a device by number, with no inode attached to the description.</summary>
    public static bool TryOpen(uint major, uint minor, OpenFlags flags, out IFileOperations operations) =>
        TryOpen(major, minor, flags, null, out operations);

    /// <summary>Opens a device by its node's <c>st_rdev</c>.</summary>
    public static bool TryOpen(ulong device, OpenFlags flags, IInode? inode, out IFileOperations operations) =>
        TryOpen(DeviceNumbers.Major(device), DeviceNumbers.Minor(device), flags, inode, out operations);

    /// <summary>
    /// Opens device <paramref name="major"/>:<paramref name="minor"/>; false (the VFS then fails with
    /// ENXIO) when the number is not known.
    /// </summary>
    /// <param name="major">Major number.</param>
    /// <param name="minor">Minor number.</param>
    /// <param name="flags">The open flags (access mode is checked on read and write).</param>
    /// <param name="inode">The device node that was opened, reported by the description (for fstat).</param>
    /// <param name="operations">The new description's operations.</param>
    public static bool TryOpen(uint major, uint minor, OpenFlags flags, IInode? inode, out IFileOperations operations)
    {
        if (!IsKnown(major, minor))
        {
            operations = null!;
            return false;
        }

        operations = new MemoryDevice((MemoryDeviceKind)minor, flags, inode);
        return true;
    }
}

internal enum MemoryDeviceKind
{
    Null = 3,
    Zero = 5,
    Full = 7,
    Random = 8,
    Urandom = 9,
}

/// <summary>An open memory device. Reads and writes ignore the offset, as Linux's do.</summary>
internal sealed class MemoryDevice(MemoryDeviceKind kind, OpenFlags flags, IInode? inode) : IFileOperations
{
    public IInode? Inode => inode;

    public MemoryDeviceKind Kind => kind;

    public long Read(Span<byte> buffer, ref long offset)
    {
        if (!flags.CanRead())
        {
            throw ErrnoException.Of(Errno.EBADF);
        }

        switch (kind)
        {
            case MemoryDeviceKind.Null:
                return 0;
            case MemoryDeviceKind.Zero:
            case MemoryDeviceKind.Full:
                buffer.Clear();
                return buffer.Length;
            default:
                RandomNumberGenerator.Fill(buffer);
                return buffer.Length;
        }
    }

    public long Write(ReadOnlySpan<byte> buffer, ref long offset, bool append)
    {
        if (!flags.CanWrite())
        {
            throw ErrnoException.Of(Errno.EBADF);
        }

        if (kind == MemoryDeviceKind.Full)
        {
            throw ErrnoException.Of(Errno.ENOSPC);
        }

        // null and zero discard; random and urandom take the bytes as (uncredited) entropy.
        return buffer.Length;
    }
}
