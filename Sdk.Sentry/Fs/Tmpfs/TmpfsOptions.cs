using System.Globalization;
using AppKernel.Vfs;
using FileMode = AppKernel.Vfs.FileMode;

namespace AppKernel.Sentry.Fs.Tmpfs;

/// <summary>
/// The mount options of a tmpfs instance, as mount(2)'s data string gives them:
/// <c>size=</c> (bytes with k/m/g/t/p/e suffixes, or a percentage of memory), <c>nr_blocks=</c>,
/// <c>nr_inodes=</c>, <c>mode=</c> (octal), <c>uid=</c> and <c>gid=</c>.
/// </summary>
public sealed class TmpfsOptions
{
    /// <summary>The most bytes the files' data may use; 0 for no limit. Linux's default is half of memory.</summary>
    public long SizeBytes { get; set; }

    /// <summary>The most inodes the instance may hold; 0 for no limit.</summary>
    public long MaxInodes { get; set; }

    /// <summary>Permission bits of the root directory (Linux's default is 01777).</summary>
    public FileMode RootMode { get; set; } = (FileMode)0x3FF; // 01777

    /// <summary>Owner of the root directory.</summary>
    public int RootUid { get; set; }

    /// <summary>Group of the root directory.</summary>
    public int RootGid { get; set; }

    /// <summary>The memory size percentages and defaults refer to (the host's, unless set).</summary>
    public static long TotalMemoryBytes => GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;

    /// <summary>Linux's defaults: half of memory for data, and as many inodes as half of memory has pages.</summary>
    public static TmpfsOptions Default()
    {
        long half = TotalMemoryBytes / 2;
        return new TmpfsOptions { SizeBytes = RoundUpToPage(half), MaxInodes = half / 4096 };
    }

    /// <summary>
    /// Parses mount(2)'s data string (comma-separated options). Unknown options and malformed
    /// values fail with EINVAL, as Linux's tmpfs does; generic flags (rw, nosuid, ...) and
    /// options with no effect here (huge=, mpol=, inode64, ...) are accepted and ignored.
    /// </summary>
    /// <param name="data">The option string, or null for the defaults.</param>
    /// <param name="totalMemoryBytes">What <c>size=N%</c> is a percentage of; the host's memory when null.</param>
    public static TmpfsOptions Parse(string? data, long? totalMemoryBytes = null)
    {
        var options = Default();
        if (string.IsNullOrEmpty(data))
        {
            return options;
        }

        long total = totalMemoryBytes ?? TotalMemoryBytes;
        foreach (string raw in data.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            int eq = raw.IndexOf('=');
            string key = eq < 0 ? raw : raw[..eq];
            string? value = eq < 0 ? null : raw[(eq + 1)..];
            switch (key)
            {
                case "size":
                    options.SizeBytes = RoundUpToPage(ParseSize(Require(value), total));
                    break;
                case "nr_blocks":
                    options.SizeBytes = checked(ParseMemory(Require(value)) * 4096);
                    break;
                case "nr_inodes":
                    options.MaxInodes = ParseMemory(Require(value));
                    break;
                case "mode":
                    options.RootMode = (FileMode)(ParseOctal(Require(value)) & 0xFFF);
                    break;
                case "uid":
                    options.RootUid = ParseId(Require(value));
                    break;
                case "gid":
                    options.RootGid = ParseId(Require(value));
                    break;
                case "huge" or "mpol" or "inode32" or "inode64" or "noswap" or "quota" or "usrquota" or "grpquota"
                    or "rw" or "ro" or "nosuid" or "suid" or "nodev" or "dev" or "noexec" or "exec" or "sync" or "async"
                    or "relatime" or "norelatime" or "noatime" or "atime" or "strictatime" or "nodiratime" or "diratime"
                    or "lazytime" or "nolazytime" or "defaults" or "silent" or "loud":
                    break;
                default:
                    throw new ErrnoException(Errno.EINVAL, $"tmpfs: unknown option '{key}'");
            }
        }

        return options;
    }

    private static string Require(string? value) =>
        string.IsNullOrEmpty(value) ? throw new ErrnoException(Errno.EINVAL, "tmpfs: option needs a value") : value;

    private static long ParseSize(string value, long total)
    {
        if (value.EndsWith('%'))
        {
            long percent = ParseDecimal(value[..^1]);
            return checked(total / 100 * percent + total % 100 * percent / 100);
        }

        return ParseMemory(value);
    }

    /// <summary>A number with an optional k/m/g/t/p/e suffix (memparse).</summary>
    private static long ParseMemory(string value)
    {
        int shift = 0;
        switch (char.ToLowerInvariant(value[^1]))
        {
            case 'k': shift = 10; break;
            case 'm': shift = 20; break;
            case 'g': shift = 30; break;
            case 't': shift = 40; break;
            case 'p': shift = 50; break;
            case 'e': shift = 60; break;
        }

        long number = ParseDecimal(shift == 0 ? value : value[..^1]);
        if (shift > 0 && number > long.MaxValue >> shift)
        {
            throw new ErrnoException(Errno.EINVAL, "tmpfs: size too large");
        }

        return number << shift;
    }

    private static long ParseDecimal(string value)
    {
        NumberStyles style = NumberStyles.None;
        if (value.StartsWith("0x", StringComparison.OrdinalIgnoreCase))
        {
            value = value[2..];
            style = NumberStyles.AllowHexSpecifier;
        }

        return long.TryParse(value, style, CultureInfo.InvariantCulture, out long number) && number >= 0
            ? number
            : throw new ErrnoException(Errno.EINVAL, $"tmpfs: bad number '{value}'");
    }

    private static uint ParseOctal(string value)
    {
        uint result = 0;
        foreach (char c in value)
        {
            if (c is < '0' or > '7' || result > 0x1FFFFFFF)
            {
                throw new ErrnoException(Errno.EINVAL, $"tmpfs: bad mode '{value}'");
            }

            result = result * 8 + (uint)(c - '0');
        }

        return result;
    }

    private static int ParseId(string value)
    {
        long id = ParseDecimal(value);
        return id <= uint.MaxValue - 1 ? unchecked((int)(uint)id) : throw new ErrnoException(Errno.EINVAL, $"tmpfs: bad id '{value}'");
    }

    private static long RoundUpToPage(long bytes) => bytes > long.MaxValue - 4095 ? long.MaxValue & ~4095L : (bytes + 4095) & ~4095L;
}
