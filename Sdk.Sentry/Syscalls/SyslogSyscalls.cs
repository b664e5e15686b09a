using AppKernel.Sentry.Kernel;
using AppKernel.Syscalls;

namespace AppKernel.Sentry.Syscalls;

/// <summary>
/// syslog(2) (klogctl): the kernel log of a sandbox is empty — the Sentry logs to its host, never to
/// the program. Reading needs CAP_SYSLOG (or CAP_SYS_ADMIN), as with dmesg_restrict set.
/// </summary>
internal static class SyslogSyscalls
{
    private const int ActionClose = 0, ActionOpen = 1, ActionRead = 2, ActionReadAll = 3, ActionReadClear = 4, ActionClear = 5,
        ActionConsoleOff = 6, ActionConsoleOn = 7, ActionConsoleLevel = 8, ActionSizeUnread = 9, ActionSizeBuffer = 10;

    private const int CAP_SYS_ADMIN = 21, CAP_SYSLOG = 34;

    /// <summary>The log buffer size reported (CONFIG_LOG_BUF_SHIFT 17).</summary>
    private const int BufferSize = 1 << 17;

    [Syscall(103)]
    public static SyscallResult Syslog(ISyscallContext c)
    {
        var t = c.Task();
        int type = (int)c.Arguments.A0;
        ulong buffer = c.Arguments.A1;
        int length = (int)c.Arguments.A2;
        if (type is < ActionClose or > ActionSizeBuffer)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        if (!t.Credentials.HasCapability(CAP_SYSLOG) && !t.Credentials.HasCapability(CAP_SYS_ADMIN))
        {
            return SyscallResult.Error(Errno.EPERM);
        }

        switch (type)
        {
            case ActionRead or ActionReadAll or ActionReadClear:
                if (buffer == 0 || length < 0)
                {
                    return SyscallResult.Error(Errno.EINVAL);
                }

                return SyscallResult.Zero; // nothing logged
            case ActionConsoleLevel:
                return length is < 1 or > 8 ? SyscallResult.Error(Errno.EINVAL) : SyscallResult.Zero;
            case ActionSizeBuffer:
                return SyscallResult.Ok(BufferSize);
            default: // close, open, clear, console off/on, size unread
                return SyscallResult.Zero;
        }
    }
}
