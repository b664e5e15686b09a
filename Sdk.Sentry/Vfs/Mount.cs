using AppKernel.Vfs;

namespace AppKernel.Sentry.Vfs;

/// <summary>A filesystem instance attached to the tree at a mount point.</summary>
internal sealed class Mount
{
    public Mount(int id, IFileSystem fileSystem, Dentry root, uint deviceMinor, string source, bool readOnly)
    {
        Id = id;
        FileSystem = fileSystem;
        Root = root;
        DeviceMinor = deviceMinor;
        Source = source;
        ReadOnly = readOnly;
    }

    /// <summary>The mount id (/proc/PID/mountinfo, statx stx_mnt_id).</summary>
    public int Id { get; }

    public IFileSystem FileSystem { get; }

    public Dentry Root { get; }

    /// <summary>st_dev of files on this mount: major 0 (anonymous), this minor.</summary>
    public uint DeviceMinor { get; }

    public ulong Device => Abi.LinuxConstants.MakeDev(0, DeviceMinor);

    public string Source { get; }

    public bool ReadOnly { get; set; }

    /// <summary>The mount this one sits in, null for the root mount.</summary>
    public Mount? Parent { get; set; }

    /// <summary>The dentry of <see cref="Parent"/> this mount covers.</summary>
    public Dentry? MountPoint { get; set; }
}
