namespace AppKernel.Vfs;

/// <summary>A point in time as Linux's <c>struct timespec</c>.</summary>
/// <param name="Seconds">Seconds since the epoch.</param>
/// <param name="Nanoseconds">Nanoseconds, 0 to 999,999,999.</param>
public readonly record struct Timespec(long Seconds, long Nanoseconds)
{
    /// <summary>The current wall-clock time.</summary>
    public static Timespec Now
    {
        get
        {
            long ticks = DateTime.UtcNow.Ticks - DateTime.UnixEpoch.Ticks;
            return new Timespec(ticks / TimeSpan.TicksPerSecond, ticks % TimeSpan.TicksPerSecond * 100);
        }
    }
}

/// <summary>What stat(2) reports about an inode. <c>st_dev</c> is assigned by the VFS per mount.</summary>
public record struct InodeAttributes
{
    /// <summary>Inode number, unique within the filesystem.</summary>
    public ulong Ino;
    /// <summary>File type and permissions.</summary>
    public FileMode Mode;
    /// <summary>Hard link count.</summary>
    public uint Links;
    /// <summary>Owner user id.</summary>
    public int Uid;
    /// <summary>Owner group id.</summary>
    public int Gid;
    /// <summary>Device number for device files.</summary>
    public ulong Rdev;
    /// <summary>Size in bytes.</summary>
    public long Size;
    /// <summary>Preferred I/O size.</summary>
    public int BlockSize;
    /// <summary>512-byte blocks allocated.</summary>
    public long Blocks;
    /// <summary>Last access.</summary>
    public Timespec AccessTime;
    /// <summary>Last modification of the contents.</summary>
    public Timespec ModifyTime;
    /// <summary>Last change of the inode.</summary>
    public Timespec ChangeTime;
    /// <summary>Creation, when the filesystem knows it.</summary>
    public Timespec BirthTime;
}

/// <summary>Which fields of an <see cref="AttributeUpdate"/> to apply.</summary>
[Flags]
public enum AttributeMask
{
    /// <summary>Nothing.</summary>
    None = 0,
    /// <summary>Permission bits (chmod).</summary>
    Mode = 1,
    /// <summary>Owner (chown).</summary>
    Uid = 2,
    /// <summary>Group (chown).</summary>
    Gid = 4,
    /// <summary>Size (truncate).</summary>
    Size = 8,
    /// <summary>Access time (utimensat).</summary>
    AccessTime = 16,
    /// <summary>Modification time (utimensat).</summary>
    ModifyTime = 32,
}

/// <summary>A change to an inode's attributes (chmod, chown, truncate, utimensat).</summary>
/// <param name="Mask">Which fields apply.</param>
/// <param name="Mode">New permission bits.</param>
/// <param name="Uid">New owner.</param>
/// <param name="Gid">New group.</param>
/// <param name="Size">New size.</param>
/// <param name="AccessTime">New access time.</param>
/// <param name="ModifyTime">New modification time.</param>
public readonly record struct AttributeUpdate(
    AttributeMask Mask,
    FileMode Mode = 0,
    int Uid = -1,
    int Gid = -1,
    long Size = 0,
    Timespec AccessTime = default,
    Timespec ModifyTime = default);

/// <summary>The owner a new file gets.</summary>
/// <param name="Uid">User id.</param>
/// <param name="Gid">Group id.</param>
public readonly record struct FileOwner(int Uid, int Gid);

/// <summary>What statfs(2) reports.</summary>
/// <param name="Type">The filesystem magic number (TMPFS_MAGIC, ...).</param>
/// <param name="BlockSize">Block size.</param>
/// <param name="Blocks">Total blocks.</param>
/// <param name="FreeBlocks">Free blocks.</param>
/// <param name="AvailableBlocks">Blocks free for unprivileged users.</param>
/// <param name="Files">Total inodes.</param>
/// <param name="FreeFiles">Free inodes.</param>
/// <param name="NameLength">Longest file name.</param>
public readonly record struct FileSystemStatistics(
    long Type, long BlockSize, long Blocks, long FreeBlocks, long AvailableBlocks, long Files, long FreeFiles, long NameLength = 255);
