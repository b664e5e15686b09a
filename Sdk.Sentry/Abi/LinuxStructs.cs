using System.Runtime.InteropServices;

namespace AppKernel.Sentry.Abi;

// The C layouts of the structs syscalls copy to and from programs (x86-64).

/// <summary>struct timespec.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct LinuxTimespec
{
    public long Seconds;
    public long Nanoseconds;
}

/// <summary>struct timeval.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct LinuxTimeval
{
    public long Seconds;
    public long Microseconds;
}

/// <summary>struct stat (x86-64 layout, 144 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct LinuxStat
{
    public ulong Dev;
    public ulong Ino;
    public ulong Nlink;
    public uint Mode;
    public uint Uid;
    public uint Gid;
    public int Pad0;
    public ulong Rdev;
    public long Size;
    public long BlockSize;
    public long Blocks;
    public long Atime, AtimeNsec, Mtime, MtimeNsec, Ctime, CtimeNsec;
    public long Unused0, Unused1, Unused2;
}

/// <summary>struct statx_timestamp.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct StatxTimestamp
{
    public long Seconds;
    public uint Nanoseconds;
    public int Reserved;
}

/// <summary>struct statx (256 bytes).</summary>
[StructLayout(LayoutKind.Sequential, Size = 256)]
internal struct LinuxStatx
{
    public uint Mask;
    public uint BlockSize;
    public ulong Attributes;
    public uint Nlink;
    public uint Uid;
    public uint Gid;
    public ushort Mode;
    public ushort Spare0;
    public ulong Ino;
    public ulong Size;
    public ulong Blocks;
    public ulong AttributesMask;
    public StatxTimestamp Atime, Btime, Ctime, Mtime;
    public uint RdevMajor, RdevMinor, DevMajor, DevMinor;
    public ulong MountId;
    public uint DioMemAlign, DioOffsetAlign;
}

/// <summary>struct statfs (x86-64, 120 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct LinuxStatfs
{
    public long Type, BlockSize, Blocks, FreeBlocks, AvailableBlocks, Files, FreeFiles;
    public int Fsid0, Fsid1;
    public long NameLength, FragmentSize, Flags;
    public long Spare0, Spare1, Spare2, Spare3;
}

/// <summary>struct rlimit.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct LinuxRlimit
{
    public ulong Current;
    public ulong Max;
}

/// <summary>struct iovec.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct LinuxIovec
{
    public ulong Base;
    public ulong Length;
}

/// <summary>struct sysinfo (x86-64, 112 bytes).</summary>
[StructLayout(LayoutKind.Sequential, Size = 112)]
internal struct LinuxSysinfo
{
    public long Uptime;
    public ulong Load1, Load5, Load15;
    public ulong TotalRam, FreeRam, SharedRam, BufferRam, TotalSwap, FreeSwap;
    public ushort Procs;
    public ushort Pad;
    public uint Pad2;
    public ulong TotalHigh, FreeHigh;
    public uint MemUnit;
}

/// <summary>The kernel's struct sigaction for rt_sigaction (handler, flags, restorer, mask).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct LinuxSigaction
{
    public ulong Handler;
    public ulong Flags;
    public ulong Restorer;
    public ulong Mask;
}

/// <summary>stack_t.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct LinuxStack
{
    public ulong Sp;
    public int Flags;
    public int Pad;
    public ulong Size;
}

/// <summary>struct winsize.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct LinuxWinsize
{
    public ushort Rows, Columns, XPixels, YPixels;
}

/// <summary>struct pollfd.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct LinuxPollfd
{
    public int Fd;
    public short Events;
    public short Revents;
}

/// <summary>struct epoll_event: packed on x86-64 (12 bytes).</summary>
[StructLayout(LayoutKind.Sequential, Pack = 4)]
internal struct LinuxEpollEvent
{
    public uint Events;
    public ulong Data;
}

/// <summary>struct signalfd_siginfo (128 bytes): what a signalfd read returns for each signal.</summary>
[StructLayout(LayoutKind.Explicit, Size = 128)]
internal struct LinuxSignalfdSiginfo
{
    [FieldOffset(0)] public uint Signo;
    [FieldOffset(4)] public int Errno;
    [FieldOffset(8)] public int Code;
    [FieldOffset(12)] public uint Pid;
    [FieldOffset(16)] public uint Uid;
    [FieldOffset(20)] public int Fd;
    [FieldOffset(24)] public uint Tid;
    [FieldOffset(28)] public uint Band;
    [FieldOffset(32)] public uint Overrun;
    [FieldOffset(36)] public uint Trapno;
    [FieldOffset(40)] public int Status;
    [FieldOffset(44)] public int Int;
    [FieldOffset(48)] public ulong Ptr;
    [FieldOffset(56)] public ulong Utime;
    [FieldOffset(64)] public ulong Stime;
    [FieldOffset(72)] public ulong Addr;
    [FieldOffset(80)] public ushort AddrLsb;
    [FieldOffset(84)] public int Syscall;
    [FieldOffset(88)] public ulong CallAddr;
    [FieldOffset(96)] public uint Arch;
}
