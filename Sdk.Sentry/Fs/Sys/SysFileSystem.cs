using System.Globalization;
using System.Text;
using AppKernel.Vfs;
using FileMode = AppKernel.Vfs.FileMode;

namespace AppKernel.Sentry.Fs.Sys;

/// <summary>
/// sysfs, read-only, with what the C library, Python and nproc read: the CPU topology under
/// /sys/devices/system/cpu (online, possible, present, cpuN) and the transparent huge page
/// policy. Nothing of the host's device tree is shown.
/// </summary>
internal sealed class SysFileSystem : IFileSystem
{
    private const long SYSFS_MAGIC = 0x62656572;
    private readonly SysDirectory root;
    private ulong nextIno = 1;

    public SysFileSystem(int cpus)
    {
        MountTime = Timespec.Now;
        root = Directory();
        string range = cpus == 1 ? "0" : $"0-{cpus - 1}";
        var cpu = root.Add("devices", Directory()).Add("system", Directory()).Add("cpu", Directory());
        cpu.Add("online", File(range + "\n"));
        cpu.Add("possible", File(range + "\n"));
        cpu.Add("present", File(range + "\n"));
        cpu.Add("offline", File("\n"));
        cpu.Add("kernel_max", File("8191\n"));
        for (int i = 0; i < cpus; i++)
        {
            var one = cpu.Add("cpu" + i.ToString(CultureInfo.InvariantCulture), Directory());
            if (i > 0)
            {
                one.Add("online", File("1\n"));
            }
        }

        root.Add("kernel", Directory()).Add("mm", Directory()).Add("transparent_hugepage", Directory())
            .Add("enabled", File("always madvise [never]\n"));
        root.Add("fs", Directory()).Add("cgroup", Directory());
        root.Add("class", Directory());
        root.Add("bus", Directory());
    }

    public string TypeName => "sysfs";

    public IInode Root => root;

    public Timespec MountTime { get; }

    public FileSystemStatistics GetStatistics() => new(SYSFS_MAGIC, 4096, 0, 0, 0, 0, 0);

    private SysDirectory Directory() => new(this, nextIno++);

    private SysFile File(string text) => new(this, nextIno++, Encoding.ASCII.GetBytes(text));

    /// <summary>What sysfs nodes share: fixed times, root ownership, read-only.</summary>
    private abstract class SysNode(SysFileSystem fs, ulong ino, FileMode mode) : IInode
    {
        public IFileSystem FileSystem => fs;

        protected SysFileSystem Sys => fs;

        public virtual InodeAttributes GetAttributes() => new()
        {
            Ino = ino,
            Mode = mode,
            Links = mode.IsDirectory() ? 2u : 1u,
            BlockSize = 4096,
            Size = mode.IsDirectory() ? 0 : 4096,
            AccessTime = fs.MountTime,
            ModifyTime = fs.MountTime,
            ChangeTime = fs.MountTime,
        };

        public abstract IFileOperations Open(OpenFlags flags);
    }

    private sealed class SysDirectory(SysFileSystem fs, ulong ino) : SysNode(fs, ino, FileMode.Directory | (FileMode)0x1ED), IInode
    {
        private readonly List<(string Name, SysNode Node)> entries = new();

        public SysDirectory Add(string name, SysDirectory directory)
        {
            entries.Add((name, directory));
            return directory;
        }

        public void Add(string name, SysFile file) => entries.Add((name, file));

        public IInode? Lookup(string name) => entries.FirstOrDefault(e => e.Name == name).Node;

        public IEnumerable<DirectoryEntry> ReadDirectory(long offset)
        {
            // Offsets 0 and 1 are "." and ".." (the VFS adds them); entry i sits at offset 2 + i.
            for (int i = (int)Math.Max(0, offset - 2); i < entries.Count; i++)
            {
                var attributes = entries[i].Node.GetAttributes();
                yield return new DirectoryEntry(entries[i].Name, attributes.Ino, attributes.Mode.Type(), i + 3);
            }
        }

        public override IFileOperations Open(OpenFlags flags) => throw ErrnoException.Of(Errno.EISDIR);
    }

    private sealed class SysFile(SysFileSystem fs, ulong ino, byte[] contents) : SysNode(fs, ino, FileMode.Regular | (FileMode)0x124)
    {
        public override IFileOperations Open(OpenFlags flags) =>
            flags.CanWrite() ? throw ErrnoException.Of(Errno.EACCES) : new Contents(this, contents);

        private sealed class Contents(SysFile file, byte[] data) : IFileOperations
        {
            public IInode? Inode => file;

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
}
