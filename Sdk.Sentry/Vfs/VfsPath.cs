namespace AppKernel.Sentry.Vfs;

/// <summary>A position in the tree: a dentry as seen through a mount (the same dentry can be reached through several mounts).</summary>
internal readonly record struct VfsPath(Mount Mount, Dentry Dentry)
{
    public AppKernel.Vfs.IInode Inode => Dentry.Inode;
}
