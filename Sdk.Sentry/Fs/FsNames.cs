using System.Text;
using AppKernel.Vfs;
using FileMode = AppKernel.Vfs.FileMode;

namespace AppKernel.Sentry.Fs;

/// <summary>Checks shared by the in-memory filesystems: name lengths, xattr names, times.</summary>
internal static class FsNames
{
    /// <summary>NAME_MAX: the longest file name, in bytes.</summary>
    public const int NameMax = 255;

    /// <summary>XATTR_NAME_MAX: the longest extended attribute name, in bytes.</summary>
    public const int XattrNameMax = 255;

    /// <summary>XATTR_SIZE_MAX: the largest extended attribute value.</summary>
    public const int XattrSizeMax = 65536;

    /// <summary>setxattr's XATTR_CREATE flag.</summary>
    public const int XattrCreate = 1;

    /// <summary>setxattr's XATTR_REPLACE flag.</summary>
    public const int XattrReplace = 2;

    /// <summary>Throws ENAMETOOLONG when <paramref name="name"/> is longer than NAME_MAX bytes.</summary>
    public static void CheckName(string name)
    {
        // Every UTF-16 unit encodes to at most 3 bytes, so short names need no counting.
        if (name.Length > NameMax / 3 && Encoding.UTF8.GetByteCount(name) > NameMax)
        {
            throw ErrnoException.Of(Errno.ENAMETOOLONG);
        }
    }

    /// <summary>True when the name is too long to exist (lookups then fail with ENAMETOOLONG).</summary>
    public static bool TooLong(string name) =>
        name.Length > NameMax / 3 && Encoding.UTF8.GetByteCount(name) > NameMax;

    /// <summary>
    /// Validates an extended attribute name for the namespaces an in-memory filesystem keeps
    /// (<c>user.</c>, <c>trusted.</c>, <c>security.</c>): ERANGE for empty or over-long names,
    /// EOPNOTSUPP for other namespaces, EINVAL for a bare prefix.
    /// </summary>
    public static void CheckXattrName(string name)
    {
        if (name.Length == 0 || Encoding.UTF8.GetByteCount(name) > XattrNameMax)
        {
            throw ErrnoException.Of(Errno.ERANGE);
        }

        int prefix = XattrPrefixLength(name);
        if (prefix == 0)
        {
            throw ErrnoException.Of(Errno.EOPNOTSUPP);
        }

        if (prefix == name.Length)
        {
            throw ErrnoException.Of(Errno.EINVAL);
        }
    }

    /// <summary>True for names in the <c>user.</c> namespace.</summary>
    public static bool IsUserXattr(string name) => name.StartsWith("user.", StringComparison.Ordinal);

    private static int XattrPrefixLength(string name)
    {
        foreach (string prefix in (ReadOnlySpan<string>)["user.", "trusted.", "security."])
        {
            if (name.StartsWith(prefix, StringComparison.Ordinal))
            {
                return prefix.Length;
            }
        }

        return 0;
    }

    /// <summary>
    /// relatime: the access time is updated when it is not newer than the modification or
    /// change time, or when it is a day old.
    /// </summary>
    public static bool AccessTimeNeedsUpdate(Timespec atime, Timespec mtime, Timespec ctime, Timespec now) =>
        Compare(atime, mtime) <= 0 || Compare(atime, ctime) <= 0 || now.Seconds - atime.Seconds >= 24 * 60 * 60;

    /// <summary>Orders two times.</summary>
    public static int Compare(Timespec a, Timespec b) =>
        a.Seconds != b.Seconds ? a.Seconds.CompareTo(b.Seconds) : a.Nanoseconds.CompareTo(b.Nanoseconds);
}
