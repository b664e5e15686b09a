using AppKernel.Sentry.Kernel;
using AppKernel.Sentry.Vfs;

namespace AppKernel.Sentry.Syscalls;

/// <summary>Installing the descriptions of anonymous files (epoll, eventfd, timerfd, signalfd).</summary>
internal static class AnonymousFiles
{
    /// <summary>Installs <paramref name="description"/> at the lowest free fd; on failure (EMFILE) it is released.</summary>
    public static int Install(KernelTask t, FileDescription description, bool cloexec)
    {
        try
        {
            return t.Fds.Install(description, cloexec, t.Group.Limits.OpenFilesLimit);
        }
        catch
        {
            description.Release();
            throw;
        }
    }
}
