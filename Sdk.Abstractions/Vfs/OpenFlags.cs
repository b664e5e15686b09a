namespace AppKernel.Vfs;

/// <summary>open(2) flags with Linux x86-64 values.</summary>
[Flags]
public enum OpenFlags : uint
{
#pragma warning disable CS1591 // Linux's names (open(2)).
    ReadOnly = 0,
    WriteOnly = 1,
    ReadWrite = 2,
    AccessMask = 3,
    Create = 0x40,
    Exclusive = 0x80,
    NoControllingTty = 0x100,
    Truncate = 0x200,
    Append = 0x400,
    NonBlocking = 0x800,
    DataSync = 0x1000,
    Async = 0x2000,
    Direct = 0x4000,
    LargeFile = 0x8000,
    Directory = 0x10000,
    NoFollow = 0x20000,
    NoAccessTime = 0x40000,
    CloseOnExec = 0x80000,
    Sync = 0x101000,
    Path = 0x200000,
    TempFile = 0x410000,
#pragma warning restore CS1591
}

/// <summary>Helpers over <see cref="OpenFlags"/>.</summary>
public static class OpenFlagsExtensions
{
    /// <summary>True when the description may be read.</summary>
    public static bool CanRead(this OpenFlags flags) =>
        (flags & OpenFlags.Path) == 0 && (flags & OpenFlags.AccessMask) is OpenFlags.ReadOnly or OpenFlags.ReadWrite;

    /// <summary>True when the description may be written.</summary>
    public static bool CanWrite(this OpenFlags flags) =>
        (flags & OpenFlags.Path) == 0 && (flags & OpenFlags.AccessMask) is OpenFlags.WriteOnly or OpenFlags.ReadWrite;
}
