using System.Text;
using AppKernel.Sentry.Kernel;
using AppKernel.Sentry.Vfs;
using AppKernel.Vfs;
using FileMode = AppKernel.Vfs.FileMode;

namespace AppKernel.Sentry.Fs.Proc;

/// <summary>What every procfs node shares: the filesystem, an inode number, an owner, fixed times.</summary>
internal abstract class ProcNode(ProcFileSystem fileSystem, ulong ino, FileMode mode, int uid = 0, int gid = 0) : IInode
{
    public ProcFileSystem Proc { get; } = fileSystem;

    public IFileSystem FileSystem => Proc;

    public virtual InodeAttributes GetAttributes() => new()
    {
        Ino = ino,
        Mode = mode,
        Links = mode.IsDirectory() ? 2u : 1u,
        Uid = uid,
        Gid = gid,
        BlockSize = 1024,
        AccessTime = Proc.MountTime,
        ModifyTime = Proc.MountTime,
        ChangeTime = Proc.MountTime,
    };

    public virtual IFileOperations Open(OpenFlags flags) => throw ErrnoException.Of(Errno.EISDIR);

    public void SetAttributes(in AttributeUpdate update) => throw ErrnoException.Of(Errno.EPERM);
}

/// <summary>A directory whose entries are computed at each lookup and listing (processes come and go).</summary>
internal sealed class ProcDirectory(ProcFileSystem fileSystem, ulong ino, Func<IEnumerable<(string Name, Func<IInode> Create)>> entries, int uid = 0)
    : ProcNode(fileSystem, ino, FileMode.Directory | (FileMode)0x16D, uid, uid), IInode
{
    public IInode? Lookup(string name)
    {
        foreach (var (entryName, create) in entries())
        {
            if (entryName == name)
            {
                return create();
            }
        }

        return null;
    }

    public IEnumerable<DirectoryEntry> ReadDirectory(long offset)
    {
        long cookie = 2;
        foreach (var (name, create) in entries())
        {
            cookie++;
            if (cookie - 1 < offset)
            {
                continue;
            }

            var inode = create();
            var attributes = inode.GetAttributes();
            yield return new DirectoryEntry(name, attributes.Ino, attributes.Mode.Type(), cookie);
        }
    }
}

/// <summary>
/// A file whose contents are generated when it is opened (a consistent snapshot per open, as
/// seq_file gives). With a <paramref name="write"/> handler it is writable: each write(2) is one
/// value, handed over as text, as Linux's single-value proc files take them.
/// </summary>
internal sealed class ProcFile(ProcFileSystem fileSystem, ulong ino, Func<byte[]> generate, FileMode permissions = (FileMode)0x124, int uid = 0, Action<string>? write = null)
    : ProcNode(fileSystem, ino, FileMode.Regular | permissions, uid, uid)
{
    public static Func<byte[]> Text(Func<string> text) => () => Encoding.UTF8.GetBytes(text());

    private void Store(ReadOnlySpan<byte> value) => (write ?? throw ErrnoException.Of(Errno.EBADF))(Encoding.UTF8.GetString(value));

    public override IFileOperations Open(OpenFlags flags)
    {
        if (flags.CanWrite() && write is null)
        {
            throw ErrnoException.Of(Errno.EACCES);
        }

        return new Contents(this, flags.CanRead() ? generate() : []);
    }

    private sealed class Contents(ProcFile file, byte[] data) : IFileOperations
    {
        public IInode? Inode => file;

        public long Write(ReadOnlySpan<byte> buffer, ref long offset, bool append)
        {
            file.Store(buffer);
            offset += buffer.Length;
            return buffer.Length;
        }

        public long Read(Span<byte> buffer, ref long offset)
        {
            if (offset >= data.Length)
            {
                return 0;
            }

            int n = (int)Math.Min(buffer.Length, data.Length - offset);
            data.AsSpan((int)offset, n).CopyTo(buffer);
            offset += n;
            return n;
        }
    }
}

/// <summary>A symlink whose target is computed when read (/proc/self, /proc/mounts).</summary>
internal sealed class ProcSymlink(ProcFileSystem fileSystem, ulong ino, Func<string> target, int uid = 0)
    : ProcNode(fileSystem, ino, FileMode.Symlink | (FileMode)0x1FF, uid, uid), IInode
{
    public string ReadLink() => target();
}

/// <summary>A magic link: readlink shows a name, following it jumps to the object itself (/proc/PID/exe, cwd, root, fd/N).</summary>
internal sealed class ProcMagicLink(ProcFileSystem fileSystem, ulong ino, Func<string> name, Func<MagicLinkTarget> resolve, int uid = 0)
    : ProcNode(fileSystem, ino, FileMode.Symlink | (FileMode)0x1FF, uid, uid), IInode, IMagicLink
{
    public string ReadLink() => name();

    public MagicLinkTarget Resolve(KernelTask task) => resolve();
}
