using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;
using AppKernel.Gofer.Native;

namespace AppKernel.Gofer.Client;

/// <summary>
/// The Gofer child process: spawned with posix_spawn (never System.Diagnostics.Process, whose
/// SIGCHLD handling would reap children the Sentry waits for) from a dedicated thread that
/// then blocks in waitpid on the Gofer's pid. That thread lives exactly as long as the Gofer,
/// which makes the Gofer's PR_SET_PDEATHSIG (tied to the spawning thread, not the process) mean
/// "the Sentry died", and reaps the Gofer the moment it exits, recording why.
/// </summary>
internal sealed unsafe class GoferProcess
{
    /// <summary>Descriptor numbers inside the Gofer.</summary>
    public const int ControlFd = 3, DataFd = 4;

    private readonly Thread reaper;
    private readonly ManualResetEventSlim spawned = new();
    private readonly string[] argv;
    private readonly string[] envp;
    private readonly int[] childFds;
    private int stderrRead;
    private int spawnError;
    private int waitStatus;
    private int waitError;
    private string? stderrTail;

    private GoferProcess(string[] argv, string[] envp, int[] childFds, int stderrRead)
    {
        this.argv = argv;
        this.envp = envp;
        this.childFds = childFds;
        this.stderrRead = stderrRead;
        reaper = new Thread(ReaperMain, 128 * 1024) { IsBackground = true, Name = "gofer reaper" };
    }

    /// <summary>The Gofer's pid (0 before it is spawned or when spawning failed).</summary>
    public int Pid { get; private set; }

    /// <summary>When the spawn began (Stopwatch timestamp: CLOCK_MONOTONIC nanoseconds on Linux).</summary>
    public long SpawnTimestamp { get; private set; }

    /// <summary>True once the Gofer has exited and been reaped.</summary>
    public bool HasExited { get; private set; }

    /// <summary>Called on the reaper thread once the Gofer has been reaped.</summary>
    public Action<string>? Exited { get; set; }

    /// <summary>
    /// Spawns the Gofer. <paramref name="fds"/> are the Sentry-side descriptors to install in the
    /// child as <see cref="ControlFd"/> and <see cref="DataFd"/>; they stay owned by the caller.
    /// </summary>
    public static GoferProcess Spawn(string dotnet, IReadOnlyList<string> arguments, int[] fds)
    {
        int* pipe = stackalloc int[2];
        if (Host.Pipe2(pipe, Host.O_CLOEXEC) != 0)
        {
            throw new GoferException($"cannot create the gofer's stderr pipe: {Host.ErrnoName(Host.Errno)}");
        }

        // The Gofer writes to stderr only when it fails; never let it block on a full pipe.
        Host.Fcntl(pipe[0], Host.F_SETFL, Host.O_NONBLOCK);
        Host.Fcntl(pipe[1], Host.F_SETFL, Host.O_NONBLOCK);

        // Move every descriptor out of the 0..4 range first, so the dup2 actions cannot clobber
        // one another in the child.
        var childFds = new int[fds.Length + 1];
        for (int i = 0; i < fds.Length; i++)
        {
            childFds[i] = Host.Fcntl(fds[i], Host.F_DUPFD_CLOEXEC, 64);
        }

        childFds[^1] = Host.Fcntl(pipe[1], Host.F_DUPFD_CLOEXEC, 64);
        Host.Close(pipe[1]);
        if (Array.IndexOf(childFds, -1) >= 0)
        {
            int errno = Host.Errno;
            foreach (int fd in childFds)
            {
                Host.CloseQuietly(fd);
            }

            Host.Close(pipe[0]);
            throw new GoferException($"cannot prepare the gofer's descriptors: {Host.ErrnoName(errno)}");
        }

        var argv = new string[arguments.Count + 1];
        argv[0] = dotnet;
        for (int i = 0; i < arguments.Count; i++)
        {
            argv[i + 1] = arguments[i];
        }

        // A clean, minimal environment: no diagnostics IPC server (it would listen on a socket),
        // no startup hooks or profilers inherited from the host; a workstation non-concurrent GC
        // (no background GC thread to start) and no PGO instrumentation, for a quick start.
        string[] envp =
        [
            "DOTNET_EnableDiagnostics=0", "DOTNET_gcServer=0", "DOTNET_gcConcurrent=0", "DOTNET_TieredPGO=0",
            "DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1", "DOTNET_NOLOGO=1",
        ];
        var process = new GoferProcess(argv, envp, childFds, pipe[0]);
        process.reaper.Start();
        process.spawned.Wait();
        foreach (int fd in childFds)
        {
            Host.Close(fd);
        }

        if (process.Pid <= 0)
        {
            Host.CloseQuietly(process.stderrRead);
            process.stderrRead = -1;
            throw new GoferException($"cannot start the gofer ({dotnet}): posix_spawn failed with {Host.ErrnoName(process.spawnError)}");
        }

        return process;
    }

    /// <summary>Waits for the Gofer to be reaped.</summary>
    public bool WaitForExit(TimeSpan timeout) => reaper.Join(timeout);

    /// <summary>Sends SIGKILL if the Gofer is still running.</summary>
    public void Kill()
    {
        if (!HasExited && Pid > 0)
        {
            Host.Kill(Pid, Host.SIGKILL);
        }
    }

    /// <summary>Why the Gofer is gone: its exit status and the end of what it printed, or "running".</summary>
    public string DescribeExit()
    {
        if (!HasExited)
        {
            return $"gofer (pid {Pid}) is still running";
        }

        var text = new StringBuilder($"gofer (pid {Pid}) ");
        int status = waitStatus;
        int signal = status & 0x7f;
        if (waitError != 0)
        {
            text.Append($"exited, status unknown (waitpid failed with {Host.ErrnoName(waitError)}: was it reaped by someone else?)");
        }
        else if (signal == 0)
        {
            text.Append($"exited with status {(status >> 8) & 0xff}");
        }
        else
        {
            text.Append($"was killed by signal {signal}{(signal == Host.SIGKILL ? " (SIGKILL)" : signal == 31 ? " (SIGSYS)" : string.Empty)}");
        }

        if (!string.IsNullOrWhiteSpace(stderrTail))
        {
            text.Append("; it printed: ").Append(stderrTail.Trim());
        }

        return text.ToString();
    }

    private void ReaperMain()
    {
        SpawnChild();
        spawned.Set();
        if (Pid <= 0)
        {
            return;
        }

        int status = 0;
        while (Host.WaitPid(Pid, &status, 0) < 0)
        {
            int errno = Host.Errno;
            if (errno != Host.EINTR)
            {
                waitError = errno; // ECHILD: someone else reaped it (a waitpid(-1) elsewhere in the host).
                break;
            }
        }

        waitStatus = status;
        stderrTail = ReadStderr();
        Host.CloseQuietly(stderrRead);
        stderrRead = -1;
        HasExited = true;
        Exited?.Invoke(DescribeExit());
    }

    private void SpawnChild()
    {
        byte** nativeArgv = ToNative(argv);
        byte** nativeEnvp = ToNative(envp);
        byte* actions = stackalloc byte[Host.SpawnFileActionsSize];
        byte* attributes = stackalloc byte[Host.SpawnAttrSize];
        byte* signals = stackalloc byte[Host.SigSetSize];
        byte* devNull = stackalloc byte[] { (byte)'/', (byte)'d', (byte)'e', (byte)'v', (byte)'/', (byte)'n', (byte)'u', (byte)'l', (byte)'l', 0 };
        try
        {
            Host.SpawnFileActionsInit(actions);
            Host.SpawnAttrInit(attributes);
            try
            {
                Host.SpawnFileActionsAddOpen(actions, 0, devNull, Host.O_RDONLY, 0);
                Host.SpawnFileActionsAddOpen(actions, 1, devNull, Host.O_WRONLY, 0);
                Host.SpawnFileActionsAddDup2(actions, childFds[^1], 2);
                for (int i = 0; i < childFds.Length - 1; i++)
                {
                    Host.SpawnFileActionsAddDup2(actions, childFds[i], ControlFd + i);
                }

                Host.SpawnFileActionsAddCloseFrom(actions, ControlFd + childFds.Length - 1);

                // Default signal dispositions and an empty mask (the runtime's own blocked and
                // ignored signals must not leak into the child), and a process group of its own so
                // terminal signals go to the Sentry, which decides.
                Host.SigEmptySet(signals);
                Host.SpawnAttrSetSigMask(attributes, signals);
                Host.SigFillSet(signals);
                Host.SigDelSet(signals, Host.SIGKILL);
                Host.SigDelSet(signals, Host.SIGSTOP);
                Host.SpawnAttrSetSigDefault(attributes, signals);
                Host.SpawnAttrSetPgroup(attributes, 0);
                Host.SpawnAttrSetFlags(attributes, Host.POSIX_SPAWN_SETSIGMASK | Host.POSIX_SPAWN_SETSIGDEF | Host.POSIX_SPAWN_SETPGROUP);

                int pid;
                SpawnTimestamp = Stopwatch.GetTimestamp();
                int result = Host.PosixSpawn(&pid, nativeArgv[0], actions, attributes, nativeArgv, nativeEnvp);
                if (result != 0)
                {
                    spawnError = result;
                    return;
                }

                Pid = pid;
            }
            finally
            {
                Host.SpawnFileActionsDestroy(actions);
                Host.SpawnAttrDestroy(attributes);
            }
        }
        finally
        {
            FreeNative(nativeArgv);
            FreeNative(nativeEnvp);
        }
    }

    private string? ReadStderr()
    {
        if (stderrRead < 0)
        {
            return null;
        }

        var buffer = new byte[8192];
        int total = 0;
        fixed (byte* data = buffer)
        {
            while (total < buffer.Length)
            {
                nint n = Host.Read(stderrRead, data + total, (nuint)(buffer.Length - total));
                if (n <= 0)
                {
                    break;
                }

                total += (int)n;
            }
        }

        return total == 0 ? null : Encoding.UTF8.GetString(buffer, 0, total);
    }

    private static byte** ToNative(string[] strings)
    {
        var array = (byte**)NativeMemory.AllocZeroed((nuint)(strings.Length + 1), (nuint)sizeof(byte*));
        for (int i = 0; i < strings.Length; i++)
        {
            int length = Encoding.UTF8.GetByteCount(strings[i]);
            var bytes = (byte*)NativeMemory.Alloc((nuint)length + 1);
            Encoding.UTF8.GetBytes(strings[i], new Span<byte>(bytes, length));
            bytes[length] = 0;
            array[i] = bytes;
        }

        return array;
    }

    private static void FreeNative(byte** array)
    {
        for (int i = 0; array[i] != null; i++)
        {
            NativeMemory.Free(array[i]);
        }

        NativeMemory.Free(array);
    }
}
