using System.Text;
using AppKernel.Platform.Ptrace.Native;

namespace AppKernel.Platform.Ptrace.Stub;

/// <summary>
/// Starts stub processes: the stub ELF lives in a sealed memfd, each stub is started with
/// posix_spawn (never System.Diagnostics.Process, whose SIGCHLD reaping would eat ptrace stops),
/// seized, and stripped of every host mapping but its code page.
/// </summary>
internal sealed unsafe class StubLauncher : IDisposable
{
    /// <summary>Options of every stub thread the platform traces.</summary>
    public const long TraceOptions = PtraceRequest.OptionExitKill | PtraceRequest.OptionTraceSysGood;

    private readonly int imageFd;
    private readonly byte[] path;

    /// <summary>Writes the stub image into a sealed memfd; must run on the thread that will spawn stubs.</summary>
    public StubLauncher()
    {
        byte[] image = StubImage.Build(LibC.GetPid());
        int fd = LibC.MemfdCreate("appkernel-stub", LibC.MFD_CLOEXEC | LibC.MFD_ALLOW_SEALING | LibC.MFD_EXEC);
        if (fd < 0 && LibC.Errno == LibC.EINVAL)
        {
            fd = LibC.MemfdCreate("appkernel-stub", LibC.MFD_CLOEXEC | LibC.MFD_ALLOW_SEALING); // kernels before 6.3
        }

        if (fd < 0)
        {
            throw new PlatformUnavailableException($"memfd_create for the ptrace stub failed: {LibC.Describe(LibC.Errno)}");
        }

        if (fd < 3)
        {
            // posix_spawn dup2s the memory file to fd 0 before exec; keep the image out of its way.
            int moved = LibC.Fcntl(fd, LibC.F_DUPFD_CLOEXEC, 3);
            LibC.Close(fd);
            fd = moved;
        }

        fixed (byte* p = image)
        {
            if (LibC.Write(fd, p, (nuint)image.Length) != image.Length)
            {
                int errno = LibC.Errno;
                LibC.Close(fd);
                throw new PlatformUnavailableException($"writing the ptrace stub image failed: {LibC.Describe(errno)}");
            }
        }

        LibC.Fcntl(fd, LibC.F_ADD_SEALS, LibC.F_SEAL_SEAL | LibC.F_SEAL_SHRINK | LibC.F_SEAL_GROW | LibC.F_SEAL_WRITE);
        imageFd = fd;
        path = Encoding.ASCII.GetBytes($"/proc/self/fd/{fd}\0");
    }

    /// <summary>
    /// Starts a stub holding <paramref name="memoryFd"/> as its fd 0, seizes it (the calling thread
    /// becomes its tracer and its parent), waits until it is parked, and unmaps everything but
    /// the stub's page. Throws <see cref="PlatformUnavailableException"/> naming the failed step.
    /// </summary>
    public StubThread Launch(int memoryFd)
    {
        int pid = Spawn(memoryFd);
        var leader = new StubThread(pid, pid);
        try
        {
            if (LibC.Ptrace(PtraceRequest.Seize, pid, 0, (nint)(TraceOptions | PtraceRequest.OptionTraceClone)) != 0)
            {
                int errno = LibC.Errno;
                if (errno == LibC.ESRCH)
                {
                    // It ended before we could seize it: its exit status names the failed setup step.
                    var status = leader.Wait();
                    throw new PlatformUnavailableException(DescribeSetupFailure(status));
                }

                throw new PlatformUnavailableException(
                    $"ptrace(PTRACE_SEIZE) of the stub process failed: {LibC.Describe(errno)}. " +
                    "ptrace is forbidden here: check Yama (/proc/sys/kernel/yama/ptrace_scope), a seccomp profile of the host " +
                    "or container that blocks ptrace, or a missing CAP_SYS_PTRACE.");
            }

            WaitUntilParked(leader);

            // The exec stack, [vdso] and [vvar] go: the program's address space holds only what the Sentry maps.
            Unmap(leader, 0, StubLayout.Base);
            Unmap(leader, StubLayout.Base + StubLayout.Size, StubLayout.TaskTop - (StubLayout.Base + StubLayout.Size));
            return leader;
        }
        catch
        {
            KillAndReap(leader);
            throw;
        }
    }

    /// <summary>Kills a stub process and collects its exit; safe on a dead one.</summary>
    public static void KillAndReap(StubThread leader)
    {
        LibC.Kill(leader.ProcessId, LibC.SIGKILL);
        try
        {
            while (!leader.Reaped && leader.Wait().Stopped)
            {
            }
        }
        catch (StubProcessExitedException)
        {
        }
    }

    public void Dispose() => LibC.Close(imageFd);

    private static void Unmap(StubThread leader, ulong address, ulong length)
    {
        long result = leader.Inject(Stub.SeccompFilter.SysMunmap, address, length);
        if (result != 0)
        {
            throw new PlatformUnavailableException($"removing the stub's host mappings failed: {LibC.Describe((int)-result)}");
        }
    }

    /// <summary>
    /// Waits until the seized stub sleeps in its park loop. It is never stopped before: an interrupt
    /// right after each resume would stop it before it executes a single instruction.
    /// </summary>
    private static void WaitUntilParked(StubThread leader)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        for (int round = 0; clock.Elapsed < TimeSpan.FromSeconds(10); round++)
        {
            char state = StubThread.SchedulerState(leader.ProcessId, leader.ThreadId);
            if (state is 'Z' or 'X')
            {
                // Setup failed: its exit status names the step.
                throw new PlatformUnavailableException(DescribeSetupFailure(leader.Wait()));
            }

            if (state == 'S')
            {
                LibC.Ptrace(PtraceRequest.Interrupt, leader.ThreadId, 0, 0);
                var status = leader.Wait();
                if (!status.Stopped)
                {
                    throw new PlatformUnavailableException(DescribeSetupFailure(status));
                }

                leader.GetRegisters(out var registers);
                if (registers.Rip >= StubLayout.Park && registers.Rip <= StubLayout.Park + StubLayout.ParkLength)
                {
                    leader.Template = registers;
                    return;
                }

                leader.Resume(PtraceRequest.Cont); // asleep somewhere else in setup: let it go on
            }

            if (round < 1000)
            {
                Thread.SpinWait(100);
            }
            else
            {
                Thread.Sleep(1);
            }
        }

        throw new PlatformUnavailableException("the ptrace stub did not reach its park loop within 10 s");
    }

    private static string DescribeSetupFailure(WaitStatus status)
    {
        if (status.Exited)
        {
            int step = status.ExitCode - StubImage.SetupFailureBase;
            if (step >= 0 && step < StubImage.SetupSteps.Length)
            {
                return $"the ptrace stub failed at {StubImage.SetupSteps[step]}";
            }
        }

        if (status.Signaled && status.TermSignal == 31)
        {
            return "the ptrace stub was killed by seccomp during setup (a host seccomp profile forbids its setup syscalls)";
        }

        return $"the ptrace stub {status.DescribeEnd()} during setup";
    }

    private int Spawn(int memoryFd)
    {
        // glibc's posix_spawn_file_actions_t is 80 bytes and posix_spawnattr_t 336; leave room.
        byte* actions = stackalloc byte[512];
        byte* attributes = stackalloc byte[1024];
        ulong* noSignals = stackalloc ulong[16];
        ulong* allSignals = stackalloc ulong[16];
        for (int i = 0; i < 16; i++)
        {
            noSignals[i] = 0;
            allSignals[i] = ulong.MaxValue;
        }

        byte* name = stackalloc byte[16];
        "appkernel-stub\0"u8.CopyTo(new Span<byte>(name, 16));
        byte** argv = stackalloc byte*[2];
        argv[0] = name;
        argv[1] = null;
        byte** envp = stackalloc byte*[1];
        envp[0] = null;

        LibC.PosixSpawnFileActionsInit(actions);
        LibC.PosixSpawnAttrInit(attributes);
        try
        {
            // The memory file becomes fd 0 (dup2 clears close-on-exec); the stub closes all others.
            int error = LibC.PosixSpawnFileActionsAddDup2(actions, memoryFd, StubLayout.MemoryFileDescriptor);

            // Nor does it keep a host directory as its working directory.
            byte* root = stackalloc byte[2];
            root[0] = (byte)'/';
            root[1] = 0;
            error = error != 0 ? error : LibC.PosixSpawnFileActionsAddChdir(actions, root);

            // Nothing blocked (the interrupt signal must get through), default dispositions, own session.
            error = error != 0 ? error : LibC.PosixSpawnAttrSetSigMask(attributes, noSignals);
            error = error != 0 ? error : LibC.PosixSpawnAttrSetSigDefault(attributes, allSignals);
            error = error != 0 ? error : LibC.PosixSpawnAttrSetFlags(
                attributes, LibC.POSIX_SPAWN_SETSIGMASK | LibC.POSIX_SPAWN_SETSIGDEF | LibC.POSIX_SPAWN_SETSID);
            int pid = 0;
            fixed (byte* p = path)
            {
                error = error != 0 ? error : LibC.PosixSpawn(&pid, p, actions, attributes, argv, envp);
            }

            if (error != 0)
            {
                throw new PlatformUnavailableException($"starting the ptrace stub with posix_spawn failed: {LibC.Describe(error)}");
            }

            return pid;
        }
        finally
        {
            LibC.PosixSpawnFileActionsDestroy(actions);
            LibC.PosixSpawnAttrDestroy(attributes);
        }
    }
}
