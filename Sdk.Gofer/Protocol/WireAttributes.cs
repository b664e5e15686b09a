using AppKernel.Gofer.Native;
using AppKernel.Vfs;
using FileMode = AppKernel.Vfs.FileMode;

namespace AppKernel.Gofer.Protocol;

/// <summary>A node's attributes as they travel: the host's statx, 108 bytes on the wire.</summary>
internal struct WireAttributes
{
    public const int Size = 108;

    public ulong Dev;
    public ulong Ino;
    public uint Mode;
    public uint Links;
    public uint Uid;
    public uint Gid;
    public ulong Rdev;
    public long FileSize;
    public uint BlockSize;
    public long Blocks;
    public long AtimeSec;
    public long MtimeSec;
    public long CtimeSec;
    public long BtimeSec;
    public uint AtimeNsec;
    public uint MtimeNsec;
    public uint CtimeNsec;
    public uint BtimeNsec;

    /// <summary>Copies the fields of a host statx.</summary>
    public static WireAttributes From(in Host.Statx s) => new()
    {
        Dev = s.Dev,
        Ino = s.Ino,
        Mode = s.Mode,
        Links = s.Nlink,
        Uid = s.Uid,
        Gid = s.Gid,
        Rdev = s.Rdev,
        FileSize = (long)s.Size,
        BlockSize = s.BlockSize,
        Blocks = (long)s.Blocks,
        AtimeSec = s.Atime.Seconds,
        AtimeNsec = s.Atime.Nanoseconds,
        MtimeSec = s.Mtime.Seconds,
        MtimeNsec = s.Mtime.Nanoseconds,
        CtimeSec = s.Ctime.Seconds,
        CtimeNsec = s.Ctime.Nanoseconds,
        BtimeSec = (s.Mask & Host.STATX_BTIME) != 0 ? s.Btime.Seconds : 0,
        BtimeNsec = (s.Mask & Host.STATX_BTIME) != 0 ? s.Btime.Nanoseconds : 0,
    };

    /// <summary>Copies the fields of a host stat (used by the client on its own descriptors).</summary>
    public static WireAttributes From(in Host.Stat s) => new()
    {
        Dev = s.Dev,
        Ino = s.Ino,
        Mode = s.Mode,
        Links = (uint)s.Nlink,
        Uid = s.Uid,
        Gid = s.Gid,
        Rdev = s.Rdev,
        FileSize = s.Size,
        BlockSize = (uint)s.BlockSize,
        Blocks = s.Blocks,
        AtimeSec = s.Atime,
        AtimeNsec = (uint)s.AtimeNsec,
        MtimeSec = s.Mtime,
        MtimeNsec = (uint)s.MtimeNsec,
        CtimeSec = s.Ctime,
        CtimeNsec = (uint)s.CtimeNsec,
    };

    /// <summary>The file type bits.</summary>
    public readonly uint Type => Mode & Host.S_IFMT;

    /// <summary>What stat reports in the sandbox.</summary>
    public readonly InodeAttributes ToInodeAttributes() => new()
    {
        Ino = Ino,
        Mode = (FileMode)Mode,
        Links = Links,
        Uid = (int)Uid,
        Gid = (int)Gid,
        Rdev = Rdev,
        Size = FileSize,
        BlockSize = (int)BlockSize,
        Blocks = Blocks,
        AccessTime = new Timespec(AtimeSec, AtimeNsec),
        ModifyTime = new Timespec(MtimeSec, MtimeNsec),
        ChangeTime = new Timespec(CtimeSec, CtimeNsec),
        BirthTime = new Timespec(BtimeSec, BtimeNsec),
    };

    public readonly void Write(ref MessageWriter w)
    {
        w.U64(Dev);
        w.U64(Ino);
        w.U32(Mode);
        w.U32(Links);
        w.U32(Uid);
        w.U32(Gid);
        w.U64(Rdev);
        w.I64(FileSize);
        w.U32(BlockSize);
        w.I64(Blocks);
        w.I64(AtimeSec);
        w.U32(AtimeNsec);
        w.I64(MtimeSec);
        w.U32(MtimeNsec);
        w.I64(CtimeSec);
        w.U32(CtimeNsec);
        w.I64(BtimeSec);
        w.U32(BtimeNsec);
    }

    public static WireAttributes Read(ref MessageReader r) => new()
    {
        Dev = r.U64(),
        Ino = r.U64(),
        Mode = r.U32(),
        Links = r.U32(),
        Uid = r.U32(),
        Gid = r.U32(),
        Rdev = r.U64(),
        FileSize = r.I64(),
        BlockSize = r.U32(),
        Blocks = r.I64(),
        AtimeSec = r.I64(),
        AtimeNsec = r.U32(),
        MtimeSec = r.I64(),
        MtimeNsec = r.U32(),
        CtimeSec = r.I64(),
        CtimeNsec = r.U32(),
        BtimeSec = r.I64(),
        BtimeNsec = r.U32(),
    };
}
