using AppKernel.Memory;

namespace AppKernel.Vfs;

/// <summary>A kind of filesystem that can be mounted (tmpfs, proc, a plugin's own).</summary>
public interface IFileSystemType
{
    /// <summary>The name mount(2) and the options refer to it by, e.g. <c>tmpfs</c>.</summary>
    string Name { get; }

    /// <summary>Creates one mounted instance.</summary>
    IFileSystem Mount(FileSystemMountContext context);
}

/// <summary>What a filesystem gets when it is mounted.</summary>
/// <param name="Source">The mount source (device or host path; meaning is the filesystem's own).</param>
/// <param name="ReadOnly">Mounted read-only.</param>
/// <param name="Data">The filesystem-specific option string (mount(2)'s <c>data</c>), or null.</param>
/// <param name="MemoryFile">The sandbox's memory file, for filesystems that keep pages in memory.</param>
/// <param name="Services">The sandbox's services.</param>
public sealed record FileSystemMountContext(string Source, bool ReadOnly, string? Data, IMemoryFile MemoryFile, IServiceProvider Services);
