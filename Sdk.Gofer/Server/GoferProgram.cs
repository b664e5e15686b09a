using System.Text;
using AppKernel.Gofer.Native;

namespace AppKernel.Gofer.Server;

/// <summary>
/// The Gofer process's entry point. Command line (built by the launcher, never by hand):
/// <c>--fd N --data-fd M --parent PID (--ro PATH | --rw PATH)...</c>: the inherited control
/// socket and first data socket, the Sentry's pid, and the attach roots in index order.
/// </summary>
internal static unsafe class GoferProgram
{
    private static int Main(string[] args)
    {
        long mainEntered = System.Diagnostics.Stopwatch.GetTimestamp();
        int socket = -1;
        int data = -1;
        int parent = -1;
        // Plain arrays: this runs at start-up, where generic instantiations over structs cost JIT time.
        var paths = new string[args.Length / 2];
        var readOnly = new bool[args.Length / 2];
        int rootCount = 0;
        for (int i = 0; i + 1 < args.Length; i += 2)
        {
            switch (args[i])
            {
                case "--fd":
                    socket = ParseInt(args[i + 1]);
                    break;
                case "--data-fd":
                    data = ParseInt(args[i + 1]);
                    break;
                case "--parent":
                    parent = ParseInt(args[i + 1]);
                    break;
                case "--ro":
                case "--rw":
                    readOnly[rootCount] = args[i] == "--ro";
                    paths[rootCount++] = args[i + 1];
                    break;
                default:
                    Console.Error.WriteLine($"appkernel-gofer: unknown argument {args[i]}");
                    return 2;
            }
        }

        if (socket < 0 || parent <= 0)
        {
            Console.Error.WriteLine("appkernel-gofer: usage: --fd N [--data-fd M] --parent PID (--ro PATH | --rw PATH)...");
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
        var roots = new ServedRoot[rootCount];
        for (int i = 0; i < rootCount; i++)
        {
            int fd = OpenRoot(paths[i]);
            if (fd < 0 && startupError is null)
            {
                startupError = $"cannot open attach root '{paths[i]}': {Host.ErrnoName(-fd)}";
            }

            roots[i] = new ServedRoot(paths[i], readOnly[i], fd);
        }

        // Confinement of this (the main) thread, which serves the control connection and starts
        // every serving thread: they inherit its root, namespaces and capabilities. The attach
        // roots are open already; from here on the thread sees only the runtime's directories.
        // Without privileges (or where unshare is refused, as in many containers) the mount
        // namespace, pivot_root and capability drop are skipped and the client logs why.
        string note = string.Empty;
        long confining = System.Diagnostics.Stopwatch.GetTimestamp();
        int pivot = Confinement.EnterPrivateRoot(Confinement.RuntimeDirectories(), out string? pivotStep);
        if (pivot != 0)
        {
            if (pivotStep is "not root" or "unshare(CLONE_NEWNS)")
            {
                note = $"no private mount namespace or pivot_root ({pivotStep}: {Host.ErrnoName(pivot)}); ";
            }
            else if (startupError is null)
            {
                startupError = $"cannot confine the gofer to a private root: {pivotStep}: {Host.ErrnoName(pivot)}";
            }
        }

        int net = Confinement.UnshareNetwork();
        if (net != 0)
        {
            note += $"no private network namespace ({Host.ErrnoName(net)}); ";
        }

        int caps = Confinement.DropCapabilities(out bool boundingKept);
        if (caps != 0 && Host.GetEffectiveUid() == 0 && startupError is null)
        {
            startupError = $"cannot drop capabilities: {Host.ErrnoName(caps)}";
        }
        else if (caps != 0)
        {
            note += "not root: no capabilities to drop; ";
        }
        else if (boundingKept)
        {
            note += "capability bounding set kept (no CAP_SETPCAP); ";
        }

        int seccomp = Confinement.InstallSeccomp();
        var checks = new StartupCheck[]
        {
            new("pivot_root", pivot), new("unshare(CLONE_NEWNET)", net), new("drop capabilities", caps), new("seccomp", seccomp),
        };
        if (seccomp != 0 && startupError is null)
        {
            startupError = $"cannot install the seccomp filter: {Host.ErrnoName(seccomp)}";
        }

        var server = new GoferServer(roots, checks, note.TrimEnd(' ', ';'), System.Diagnostics.Stopwatch.GetTimestamp() - confining);
        server.ServeInitial(socket, startupError, mainEntered, data >= 0 ? () => server.StartServing(data) : null);

        // The Sentry closed the first connection (or died): the Gofer's work is over. Exit at
        // once, without waiting for other connections' threads.
        Host.Exit(startupError is null ? 0 : 1);
        return 0;
    }

    /// <summary>A non-negative decimal (no culture data to load at start-up); -1 when malformed.</summary>
    private static int ParseInt(string text)
    {
        int value = 0;
        foreach (char c in text)
        {
            if (c is < '0' or > '9' || value > (int.MaxValue - 9) / 10)
            {
                return -1;
            }

            value = (value * 10) + (c - '0');
        }

        return text.Length == 0 ? -1 : value;
    }

    private static int OpenRoot(string path)
    {
        // The attach roots are the Sentry's configuration, resolved once here; everything after
        // is relative to these descriptors.
        var bytes = new byte[Encoding.UTF8.GetByteCount(path) + 1];
        Encoding.UTF8.GetBytes(path, bytes);
        fixed (byte* p = bytes)
        {
            int fd = Host.Open(p, Host.O_PATH | Host.O_DIRECTORY | Host.O_CLOEXEC, 0);
            return fd >= 0 ? fd : -Host.Errno;
        }
    }
}
