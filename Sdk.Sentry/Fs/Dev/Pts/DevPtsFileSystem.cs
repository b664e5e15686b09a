using System.Collections.Concurrent;
using AppKernel.Sentry.Kernel;
using AppKernel.Sentry.Vfs;
using AppKernel.Vfs;
using FileMode = AppKernel.Vfs.FileMode;

namespace AppKernel.Sentry.Fs.Dev.Pts;

/// <summary>
/// devpts, mounted on /dev/pts: one character device N (136:N) per open pseudo-terminal and the
/// ptmx node. Opening /dev/ptmx (5:2) makes a new pair; /dev/tty (5:0) is the caller's
/// controlling terminal. Each sandbox has its own instance, so terminal numbers start at 0.
/// </summary>
internal sealed class DevPtsFileSystem : IFileSystem
{
    /// <summary>UNIX98_PTY_SLAVE_MAJOR.</summary>
    public const uint SlaveMajor = 136;

    /// <summary>TTYAUX_MAJOR: /dev/tty (minor 0) and /dev/ptmx (minor 2).</summary>
    public const uint AuxMajor = 5;

    public const uint TtyMinor = 0, PtmxMinor = 2;

    /// <summary>/proc/sys/kernel/pty/max's default.</summary>
    private const int MaxTerminals = 4096;

    private readonly ConcurrentDictionary<int, Terminal> terminals = new();
    private readonly Kernel.Kernel kernel;
    private readonly Timespec mounted = Timespec.Now;
    private readonly PtsDirectory root;

    public DevPtsFileSystem(Kernel.Kernel kernel)
    {
        this.kernel = kernel;
        root = new PtsDirectory(this);
        Ptmx = new PtsNode(this, 2, FileMode.CharDevice, () => DeviceNumbers.Make(AuxMajor, PtmxMinor), () => new FileOwner(0, 0), () => 0);
    }

    public string TypeName => "devpts";

    public IInode Root => root;

    public bool CachesLookups => false;

    /// <summary>/dev/pts/ptmx (mode 0000, as devpts mounts it without ptmxmode).</summary>
    internal PtsNode Ptmx { get; }

    public FileSystemStatistics GetStatistics() => new(0x1CD1, 4096, 0, 0, 0, 0, 0);

    /// <summary>Registers the device numbers this filesystem serves with the VFS.</summary>
    public void RegisterDevices(DeviceRegistry devices)
    {
        devices.Register(AuxMajor, PtmxMinor, (flags, inode) => OpenMaster(flags, inode));
        devices.Register(AuxMajor, TtyMinor, (flags, inode) => OpenControllingTerminal(flags, inode));
        devices.RegisterMajor(SlaveMajor, (minor, flags, inode) =>
            terminals.TryGetValue((int)minor, out var terminal)
                ? OpenSlave(terminal, KernelTask.Current, flags, inode)
                : throw ErrnoException.Of(Errno.EIO));
    }

    /// <summary>The terminals in index order (for listings).</summary>
    public IEnumerable<Terminal> Terminals => terminals.Values.OrderBy(t => t.Index);

    public bool TryGet(int index, out Terminal terminal) => terminals.TryGetValue(index, out terminal!);

    public IInode SlaveInode(Terminal terminal) =>
        new PtsNode(this, (ulong)terminal.Index + 3, FileMode.CharDevice, () => terminal.Device, () => terminal.Owner, () => terminal.Permissions, terminal);

    public PtySlave OpenSlave(Terminal terminal, KernelTask? task, OpenFlags flags, IInode? inode)
    {
        terminal.OpenSlave(task, flags);
        return new PtySlave(terminal, this, inode);
    }

    public void Remove(Terminal terminal) => terminals.TryRemove(new KeyValuePair<int, Terminal>(terminal.Index, terminal));

    internal Timespec MountTime => mounted;

    private PtyMaster OpenMaster(OpenFlags flags, IInode inode)
    {
        var task = KernelTask.Current;
        var owner = task is null ? new FileOwner(0, 0) : new FileOwner(task.Credentials.FsUid, 5); // group tty
        for (int index = 0; index < MaxTerminals; index++)
        {
            var terminal = new Terminal(kernel, index, owner);
            if (terminals.TryAdd(index, terminal))
            {
                return new PtyMaster(terminal, this, inode);
            }
        }

        throw ErrnoException.Of(Errno.ENOSPC);
    }

    private IFileOperations OpenControllingTerminal(OpenFlags flags, IInode inode)
    {
        var terminal = KernelTask.Current?.Group.ControllingTerminal ?? throw ErrnoException.Of(Errno.ENXIO);
        return OpenSlave(terminal, null, flags, inode);
    }

    /// <summary>The devpts root: ptmx and one entry per terminal.</summary>
    private sealed class PtsDirectory(DevPtsFileSystem fs) : IInode
    {
        public IFileSystem FileSystem => fs;

        public InodeAttributes GetAttributes() => new()
        {
            Ino = 1,
            Mode = FileMode.Directory | (FileMode)0x1ED,
            Links = 2,
            BlockSize = 4096,
            AccessTime = fs.MountTime,
            ModifyTime = fs.MountTime,
            ChangeTime = fs.MountTime,
        };

        public IInode? Lookup(string name)
        {
            if (name == "ptmx")
            {
                return fs.Ptmx;
            }

            return int.TryParse(name, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int index) &&
                   index.ToString(System.Globalization.CultureInfo.InvariantCulture) == name && fs.TryGet(index, out var terminal)
                ? fs.SlaveInode(terminal)
                : null;
        }

        public IEnumerable<DirectoryEntry> ReadDirectory(long offset)
        {
            // Offsets 0 and 1 are "." and ".." (the VFS adds them); entry i sits at offset 2 + i.
            var names = new List<(string Name, ulong Ino)> { ("ptmx", 2) };
            names.AddRange(fs.Terminals.Select(t => (t.Index.ToString(System.Globalization.CultureInfo.InvariantCulture), (ulong)t.Index + 3)));
            long cookie = 2;
            foreach (var (name, ino) in names)
            {
                cookie++;
                if (cookie - 1 >= offset)
                {
                    yield return new DirectoryEntry(name, ino, FileMode.CharDevice, cookie);
                }
            }
        }

        public IFileOperations Open(OpenFlags flags) => throw ErrnoException.Of(Errno.EISDIR);
    }
}

/// <summary>A device node of devpts: ptmx, or a terminal's slave whose owner and mode chown/chmod change.</summary>
internal sealed class PtsNode(DevPtsFileSystem fs, ulong ino, FileMode type, Func<ulong> device, Func<FileOwner> owner, Func<FileMode> permissions, Terminal? terminal = null) : IInode
{
    public IFileSystem FileSystem => fs;

    public InodeAttributes GetAttributes()
    {
        var who = owner();
        return new InodeAttributes
        {
            Ino = ino,
            Mode = type | permissions(),
            Links = 1,
            Uid = who.Uid,
            Gid = who.Gid,
            Rdev = device(),
            BlockSize = 1024,
            AccessTime = fs.MountTime,
            ModifyTime = fs.MountTime,
            ChangeTime = fs.MountTime,
        };
    }

    public void SetAttributes(in AttributeUpdate update)
    {
        if (terminal is null)
        {
            throw ErrnoException.Of(Errno.EPERM);
        }

        var who = terminal.Owner;
        if ((update.Mask & AttributeMask.Mode) != 0)
        {
            terminal.Permissions = update.Mode & (FileMode)0xFFF;
        }

        if ((update.Mask & (AttributeMask.Uid | AttributeMask.Gid)) != 0)
        {
            terminal.Owner = new FileOwner(
                (update.Mask & AttributeMask.Uid) != 0 && update.Uid >= 0 ? update.Uid : who.Uid,
                (update.Mask & AttributeMask.Gid) != 0 && update.Gid >= 0 ? update.Gid : who.Gid);
        }
    }

    public IFileOperations Open(OpenFlags flags) => throw ErrnoException.Of(Errno.ENXIO);
}
