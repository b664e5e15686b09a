namespace AppKernel.Vfs;

/// <summary>The <c>st_mode</c> bits: file type and permissions, with Linux's values.</summary>
[Flags]
public enum FileMode : uint
{
    /// <summary>No bits.</summary>
    None = 0,
#pragma warning disable CS1591 // Linux's names (inode(7)).
    TypeMask = 0xF000,
    Socket = 0xC000,
    Symlink = 0xA000,
    Regular = 0x8000,
    BlockDevice = 0x6000,
    Directory = 0x4000,
    CharDevice = 0x2000,
    Fifo = 0x1000,
    SetUid = 0x800,
    SetGid = 0x400,
    Sticky = 0x200,
    PermissionMask = 0xFFF,
    OwnerRead = 0x100, OwnerWrite = 0x80, OwnerExecute = 0x40,
    GroupRead = 0x20, GroupWrite = 0x10, GroupExecute = 0x8,
    OtherRead = 0x4, OtherWrite = 0x2, OtherExecute = 0x1,
#pragma warning restore CS1591
}

/// <summary>Helpers over <see cref="FileMode"/>.</summary>
public static class FileModeExtensions
{
    /// <summary>The file type bits.</summary>
    public static FileMode Type(this FileMode mode) => mode & FileMode.TypeMask;

    /// <summary>True for directories.</summary>
    public static bool IsDirectory(this FileMode mode) => mode.Type() == FileMode.Directory;

    /// <summary>True for regular files.</summary>
    public static bool IsRegular(this FileMode mode) => mode.Type() == FileMode.Regular;

    /// <summary>True for symbolic links.</summary>
    public static bool IsSymlink(this FileMode mode) => mode.Type() == FileMode.Symlink;

    /// <summary>The <c>d_type</c> value getdents reports for this mode (DT_REG, DT_DIR, ...).</summary>
    public static byte DirentType(this FileMode mode) => (byte)((uint)mode.Type() >> 12);
}
