using System.Text;
using AppKernel.Sentry.Kernel;
using AppKernel.Syscalls;

namespace AppKernel.Sentry.Syscalls;

/// <summary>The names of a task's UTS namespace: uname, sethostname, setdomainname.</summary>
internal static class UtsSyscalls
{
    /// <summary>__NEW_UTS_LEN.</summary>
    private const int NameLength = 64;

    private const int CAP_SYS_ADMIN = 21;

    [Syscall(63)]
    public static SyscallResult Uname(ISyscallContext c)
    {
        var t = c.Task();
        var kernel = t.Kernel;
        var uts = t.UtsOrRoot;
        var buffer = new byte[(NameLength + 1) * 6];
        void Field(int index, string value) => Encoding.UTF8.GetBytes(value.AsSpan(0, Math.Min(value.Length, NameLength)), buffer.AsSpan(index * (NameLength + 1)));
        Field(0, "Linux");
        Field(1, uts.Hostname);
        Field(2, kernel.Options.KernelRelease);
        Field(3, "#1 SMP PREEMPT_DYNAMIC AppKernel");
        Field(4, "x86_64");
        Field(5, uts.DomainName);
        t.Mm.Write(c.Arguments.A0, buffer);
        return SyscallResult.Zero;
    }

    [Syscall(170)]
    public static SyscallResult Sethostname(ISyscallContext c)
    {
        var t = c.Task();
        string name = ReadName(t, c.Arguments.A0, (long)c.Arguments.A1);
        t.UtsOrRoot.Hostname = name;
        return SyscallResult.Zero;
    }

    [Syscall(171)]
    public static SyscallResult Setdomainname(ISyscallContext c)
    {
        var t = c.Task();
        string name = ReadName(t, c.Arguments.A0, (long)c.Arguments.A1);
        t.UtsOrRoot.DomainName = name;
        return SyscallResult.Zero;
    }

    /// <summary>The checks both setters share: CAP_SYS_ADMIN, a length of 0 to 64 (EINVAL), readable memory (EFAULT).</summary>
    private static string ReadName(KernelTask t, ulong address, long length)
    {
        if (!t.Credentials.HasCapability(CAP_SYS_ADMIN))
        {
            throw ErrnoException.Of(Errno.EPERM);
        }

        if (length is < 0 or > NameLength)
        {
            throw ErrnoException.Of(Errno.EINVAL);
        }

        var bytes = new byte[length];
        t.Mm.Read(address, bytes);
        // The name is the given bytes, not a C string: an embedded NUL ends what uname shows.
        int end = Array.IndexOf(bytes, (byte)0);
        return Encoding.UTF8.GetString(bytes, 0, end < 0 ? bytes.Length : end);
    }
}
