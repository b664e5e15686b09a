namespace AppKernel.Sentry.Vfs;

/// <summary>A task's root, working directory and umask; shared between tasks cloned with CLONE_FS.</summary>
internal sealed class FsContext
{
    public FsContext(VfsPath root, VfsPath cwd, int umask)
    {
        Root = root;
        Cwd = cwd;
        Umask = umask;
    }

    public VfsPath Root { get; set; }

    public VfsPath Cwd { get; set; }

    public int Umask { get; set; }

    public FsContext Clone() => new(Root, Cwd, Umask);
}
