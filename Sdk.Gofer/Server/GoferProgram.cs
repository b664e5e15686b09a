using System.Text;
using AppKernel.Gofer.Native;

namespace AppKernel.Gofer.Server;

/// <summary>
/// The Gofer process's entry point. Command line (built by the launcher, never by hand):
/// <c>--fd N --parent PID (--ro PATH | --rw PATH)...</c>: the inherited socket, the Sentry's
/// pid, and the attach roots in index order.
/// </summary>
internal static unsafe class GoferProgram
{
    private static int Main(string[] args)
    {
        long mainEntered = System.Diagnostics.Stopwatch.GetTimestamp();
        int socket = -1;
        int data = -1;
        int parent = -1;
        var paths = new List<(string Path, bool ReadOnly)>();
        for (int i = 0; i + 1 < args.Length; i += 2)
        {
            switch (args[i])
            {
                case "--fd":
                    socket = int.Parse(args[i + 1], System.Globalization.CultureInfo.InvariantCulture);
                    break;
                case "--data-fd":
                    data = int.Parse(args[i + 1], System.Globalization.CultureInfo.InvariantCulture);
                    break;
                case "--close-fd":
                    // Descriptors the host read at start-up (runtimeconfig, deps): not needed any more.
                    Host.CloseQuietly(int.Parse(args[i + 1], System.Globalization.CultureInfo.InvariantCulture));
                    break;
                case "--parent":
                    parent = int.Parse(args[i + 1], System.Globalization.CultureInfo.InvariantCulture);
                    break;
                case "--ro":
                    paths.Add((args[i + 1], true));
                    break;
                case "--rw":
                    paths.Add((args[i + 1], false));
                    break;
                default:
                    Console.Error.WriteLine($"appkernel-gofer: unknown argument {args[i]}");
                    return 2;
            }
        }

        if (socket < 0 || parent <= 0)
        {
            Console.Error.WriteLine("appkernel-gofer: usage: --fd N --parent PID (--ro PATH | --rw PATH)...");
            return 2;
        }

        // Die with the Sentry. The death signal is tied to the thread that spawned the Gofer,
        // so the launcher spawns from a thread that lives exactly as long as the Gofer. If the
        // parent already died, the Gofer was reparented: stop now. EOF on the socket is the
        // second, independent way the Gofer learns the Sentry is gone.
        Host.Prctl(Host.PR_SET_PDEATHSIG, Host.SIGKILL, 0, 0, 0);
        if (Host.GetParentPid() != parent)
        {
            return 1;
        }

        // No core dumps and no ptrace attach by other processes of the same user.
        Host.Prctl(Host.PR_SET_DUMPABLE, 0, 0, 0, 0);

        // Modes arrive with the sandbox's umask already applied.
        Host.Umask(0);

        string? startupError = null;
        var roots = new List<ServedRoot>(paths.Count);
        foreach (var (path, readOnly) in paths)
        {
            int fd = OpenRoot(path);
            if (fd < 0 && startupError is null)
            {
                startupError = $"cannot open attach root '{path}': {Host.ErrnoName(-fd)}";
            }

            roots.Add(new ServedRoot(path, readOnly, fd));
        }

        var checks = new List<(string Name, int Errno)>();
        int net = Confinement.UnshareNetwork();
        checks.Add(("unshare(CLONE_NEWNET)", net));
        int seccomp = Confinement.InstallSeccomp();
        checks.Add(("seccomp", seccomp));
        if (seccomp != 0 && startupError is null)
        {
            startupError = $"cannot install the seccomp filter: {Host.ErrnoName(seccomp)}";
        }

        var server = new GoferServer(roots, checks);
        server.ServeInitial(socket, startupError, mainEntered, data >= 0 ? () => server.StartServing(data) : null);

        // The Sentry closed the first connection (or died): the Gofer's work is over. Exit at
        // once, without waiting for other connections' threads.
        Host.Exit(startupError is null ? 0 : 1);
        return 0;
    }

    private static int OpenRoot(string path)
    {
        // The attach roots are the Sentry's configuration, resolved once here; everything after
        // is relative to these descriptors.
        var bytes = Encoding.UTF8.GetBytes(path + "\0");
        fixed (byte* p = bytes)
        {
            int fd = Host.Open(p, Host.O_PATH | Host.O_DIRECTORY | Host.O_CLOEXEC, 0);
            return fd >= 0 ? fd : -Host.Errno;
        }
    }
}
