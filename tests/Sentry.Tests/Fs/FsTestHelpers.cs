using System.Text;
using AppKernel.Vfs;
using FileMode = AppKernel.Vfs.FileMode;

namespace AppKernel.Sentry.Tests.Fs;

internal static class FsTestHelpers
{
    public static readonly FileOwner Root = new(0, 0);

    public static FileMode Reg(int permissions = 0x1A4) => FileMode.Regular | (FileMode)permissions; // 0644

    public static FileMode Dir(int permissions = 0x1ED) => (FileMode)permissions; // 0755

    public static Errno ErrnoOf(Action action)
    {
        try
        {
            action();
        }
        catch (ErrnoException e)
        {
            return e.Errno;
        }

        return Errno.None;
    }

    public static IInode File(IInode directory, string name, string content = "")
    {
        var inode = directory.CreateNode(name, Reg(), 0, Root);
        if (content.Length > 0)
        {
            WriteAll(inode, content);
        }

        return inode;
    }

    public static void WriteAll(IInode inode, string content, long offset = 0)
    {
        var ops = inode.Open(OpenFlags.WriteOnly);
        try
        {
            byte[] bytes = Encoding.UTF8.GetBytes(content);
            long at = offset;
            Assert.AreEqual(bytes.Length, ops.Write(bytes, ref at, append: false));
        }
        finally
        {
            ops.Release();
        }
    }

    public static string ReadAll(IInode inode)
    {
        var ops = inode.Open(OpenFlags.ReadOnly);
        try
        {
            return ReadAll(ops);
        }
        finally
        {
            ops.Release();
        }
    }

    public static string ReadAll(IFileOperations ops)
    {
        var result = new MemoryStream();
        var buffer = new byte[1000];
        long offset = 0;
        while (true)
        {
            long n = ops.Read(buffer, ref offset);
            if (n == 0)
            {
                return Encoding.UTF8.GetString(result.ToArray());
            }

            result.Write(buffer, 0, (int)n);
        }
    }

    public static List<string> Names(IInode directory) => directory.ReadDirectory(2).Select(e => e.Name).ToList();

    public static List<string> SortedNames(IInode directory)
    {
        var names = Names(directory);
        names.Sort(StringComparer.Ordinal);
        return names;
    }
}
