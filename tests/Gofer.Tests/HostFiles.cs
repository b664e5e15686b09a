using System.Runtime.InteropServices;

namespace AppKernel.Gofer.Tests;

/// <summary>Host-side facts the tests compare the Gofer's answers with.</summary>
internal static unsafe partial class HostFiles
{
    [StructLayout(LayoutKind.Sequential)]
    public struct Stat
    {
        public ulong Dev, Ino, Nlink;
        public uint Mode, Uid, Gid, Pad0;
        public ulong Rdev;
        public long Size, BlockSize, Blocks;
        public long Atime, AtimeNsec, Mtime, MtimeNsec, Ctime, CtimeNsec;
        public long Reserved0, Reserved1, Reserved2;
    }

    [LibraryImport("libc", EntryPoint = "lstat", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int LstatCall(string path, Stat* stat);

    [LibraryImport("libc", EntryPoint = "mkfifo", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int MkFifo(string path, uint mode);

    [LibraryImport("libc", EntryPoint = "mount", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int Mount(string source, string target, string type, ulong flags, string? data);

    [LibraryImport("libc", EntryPoint = "umount2", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int Unmount(string target, int flags);

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    public static partial int Kill(int pid, int signal);

    /// <summary>lstat of <paramref name="path"/>.</summary>
    public static Stat Lstat(string path)
    {
        Stat stat;
        if (LstatCall(path, &stat) != 0)
        {
            throw new IOException($"lstat {path}: errno {Marshal.GetLastPInvokeError()}");
        }

        return stat;
    }

    /// <summary>A fresh temporary directory (removed by the caller).</summary>
    public static string TempDirectory(string prefix)
    {
        var path = Path.Combine(Path.GetTempPath(), $"{prefix}-{Environment.ProcessId}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(path);
        return path;
    }

    /// <summary>Builds the tree the read-only tests serve.</summary>
    public static void BuildTree(string root)
    {
        File.WriteAllText(Path.Combine(root, "hello.txt"), "hello, gofer\n");
        var big = new byte[3 * 4096 + 100];
        new Random(42).NextBytes(big);
        File.WriteAllBytes(Path.Combine(root, "big.bin"), big);
        Directory.CreateDirectory(Path.Combine(root, "dir", "sub"));
        File.WriteAllText(Path.Combine(root, "dir", "a.txt"), "a");
        File.WriteAllText(Path.Combine(root, "dir", "b.txt"), "bb");
        Directory.CreateDirectory(Path.Combine(root, "many"));
        for (int i = 0; i < 300; i++)
        {
            File.WriteAllText(Path.Combine(root, "many", $"file-{i:D3}-{new string('x', i % 40)}"), string.Empty);
        }

        File.CreateSymbolicLink(Path.Combine(root, "link-to-hello"), "hello.txt");
        File.CreateSymbolicLink(Path.Combine(root, "escape"), "/etc/passwd");
        Directory.CreateSymbolicLink(Path.Combine(root, "escape-dir"), "/etc");
        if (MkFifo(Path.Combine(root, "fifo"), 0x1a4) != 0)
        {
            throw new IOException("mkfifo failed");
        }
    }

    /// <summary>The content of /proc/PID/status as key → value.</summary>
    public static Dictionary<string, string> ProcStatus(int pid)
    {
        var result = new Dictionary<string, string>();
        foreach (var line in File.ReadAllLines($"/proc/{pid}/status"))
        {
            int colon = line.IndexOf(':');
            if (colon > 0)
            {
                result[line[..colon]] = line[(colon + 1)..].Trim();
            }
        }

        return result;
    }
}
