using AppKernel.Vfs;

namespace AppKernel.Gofer;

/// <summary>
/// The <c>bind</c> filesystem type: a host directory served by the sandbox's Gofer. Attach roots
/// are fixed when the Gofer starts, so the Sentry starts it with the root filesystem and every
/// bind mount's source, then mounts each through this type (the source picks the root).
/// </summary>
/// <param name="connection">The sandbox's Gofer.</param>
/// <param name="roots">The roots the Gofer was started with, in the same order.</param>
/// <param name="options">Caching options for the filesystems it mounts, or null for the defaults.</param>
public sealed class GoferFileSystemType(GoferConnection connection, IReadOnlyList<GoferRoot> roots, GoferMountOptions? options = null) : IFileSystemType
{
    /// <inheritdoc/>
    public string Name => "bind";

    /// <inheritdoc/>
    /// <exception cref="ErrnoException">ENOENT when <see cref="FileSystemMountContext.Source"/> is not one of the Gofer's roots.</exception>
    public IFileSystem Mount(FileSystemMountContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        string source = Normalize(context.Source);
        for (int i = 0; i < roots.Count; i++)
        {
            if (Normalize(roots[i].HostPath) == source)
            {
                return new GoferFileSystem(connection, i, context.MemoryFile, context.ReadOnly || roots[i].ReadOnly, options);
            }
        }

        throw new ErrnoException(Errno.ENOENT, $"host directory '{context.Source}' is not served by the gofer (its roots are fixed when the sandbox starts)");
    }

    private static string Normalize(string path) => Path.TrimEndingDirectorySeparator(Path.GetFullPath(path));
}
