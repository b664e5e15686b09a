namespace AppKernel.Vfs;

/// <summary>One mounted filesystem instance.</summary>
public interface IFileSystem
{
    /// <summary>The filesystem type's name, as /proc/mounts shows it.</summary>
    string TypeName { get; }

    /// <summary>The root directory.</summary>
    IInode Root { get; }

    /// <summary>What statfs reports.</summary>
    FileSystemStatistics GetStatistics();

    /// <summary>
    /// False for filesystems whose names change on their own (procfs: processes come and go),
    /// so the VFS looks every name up again instead of caching it.
    /// </summary>
    bool CachesLookups => true;

    /// <summary>
    /// How long the VFS trusts a cached name (found or absent) before asking the filesystem
    /// again, for filesystems whose names can also change outside the sandbox (a host
    /// directory). <see cref="Timeout.InfiniteTimeSpan"/> (the default) trusts cached names
    /// until the sandbox itself changes them. Only meaningful when <see cref="CachesLookups"/> is true.
    /// </summary>
    TimeSpan LookupCacheTimeout => Timeout.InfiniteTimeSpan;

    /// <summary>Called when the last mount of the instance goes away.</summary>
    void Release()
    {
    }
}
