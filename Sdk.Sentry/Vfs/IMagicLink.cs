using AppKernel.Sentry.Kernel;

namespace AppKernel.Sentry.Vfs;

/// <summary>
/// A procfs link that resolves to an object rather than a path (/proc/PID/fd/N, exe, cwd, root):
/// following it jumps straight to the target, even a deleted file or a pipe.
/// </summary>
internal interface IMagicLink
{
    /// <summary>The target for <paramref name="task"/>; ENOENT when the target is gone.</summary>
    MagicLinkTarget Resolve(KernelTask task);
}

/// <summary>Either a path in the tree or an open file description with no path (a pipe, a socket).</summary>
internal readonly record struct MagicLinkTarget(VfsPath? Path, FileDescription? Description);
