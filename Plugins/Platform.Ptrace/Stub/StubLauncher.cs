using System.Text;
using AppKernel.Platform.Ptrace.Native;

namespace AppKernel.Platform.Ptrace.Stub;

/// <summary>
/// Starts stub processes: the stub ELF lives in a sealed memfd, each stub is started with
/// posix_spawn (never System.Diagnostics.Process, whose SIGCHLD reaping would eat ptrace stops),
/// seized once its setup is done, and stripped of every host mapping but its code page.
/// </summary>
internal sealed unsafe class StubLauncher : IDisposable
{
    /// <summary>Options of every stub thread the platform traces.</summary>
    public const long TraceOptions = PtraceRequest.OptionExitKill | PtraceRequest.OptionTraceSysGood;

    private const int ReadyPipeDescriptor = 1;

    private readonly int imageFd;
    private readonly byte[] path;
    private readonly StubSites sites;

    /// <summary>Writes the stub image into a sealed memfd; must run on the thread that will spawn stubs.</summary>
    public StubLauncher()
    {
        var program = StubImage.Build(LibC.GetPid());
        sites = program.Sites;
        int fd = LibC.MemfdCreate("appkernel-stub", LibC.MFD_CLOEXEC | LibC.MFD_ALLOW_SEALING | LibC.MFD_EXEC);
        if (fd < 0 && LibC.Errno == LibC.EINVAL)
        {
            fd = LibC.MemfdCreate("appkernel-stub", LibC.MFD_CLOEXEC | LibC.MFD_ALLOW_SEALING); // kernels before 6.3
        }

        if (fd < 0)
        {
            throw new PlatformUnavailableException($"memfd_create for the ptrace stub failed: {LibC.Describe(LibC.Errno)}");
        }

        fd = AboveStandardDescriptors(fd);

        fixed (byte* p = program.Elf)
        {
            if (LibC.Write(fd, p, (nuint)program.Elf.Length) != program.Elf.Length)
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
    /// Starts a stub holding <paramref name="memoryFd"/> as its fd 0, waits (blocked, no polling) until
    /// its setup is done, seizes it (the calling thread becomes its tracer and is its parent), and
    /// unmaps everything but the stub's page. Throws <see cref="PlatformUnavailableException"/> naming
    /// the failed step.
    /// </summary>
    public StubThread Launch(int memoryFd)
    {
        int* ready = stackalloc int[2];
        if (LibC.Pipe2(ready, LibC.O_CLOEXEC) != 0)
        {
            throw new PlatformUnavailableException($"pipe2 for the ptrace stub failed: {LibC.Describe(LibC.Errno)}");
        }

        ready[0] = AboveStandardDescriptors(ready[0]);
        ready[1] = AboveStandardDescriptors(ready[1]);

        int pid;
        try
        {
            pid = Spawn(memoryFd, ready[1]);
        }
        finally
        {
            LibC.Close(ready[1]);
        }

        var leader = new StubThread(pid, pid);
        try
        {
            // The stub closes its end of the pipe as the last step of its setup (or by dying).
            WaitForEndOfFile(ready[0]);
            if (LibC.Ptrace(PtraceRequest.Seize, pid, 0, (nint)(TraceOptions | PtraceRequest.OptionTraceClone)) != 0)
            {
                int errno = LibC.Errno;
                int status;
                if (LibC.WaitPid(pid, &status, LibC.WALL | LibC.WNOHANG) == pid)
                {
                    leader.Reaped = true;
                    throw new PlatformUnavailableException(DescribeSetupFailure(new WaitStatus(status)));
                }

                throw new PlatformUnavailableException(
                    $"ptrace(PTRACE_SEIZE) of the stub process failed: {LibC.Describe(errno)}; ptrace is forbidden here " +
                    $"({DescribePtraceRestrictions()})");
            }

            StopParked(leader);

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
        finally
        {
            LibC.Close(ready[0]);
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

    /// <summary>posix_spawn dup2s onto fds 0 and 1 before exec: keep our own fds out of their way (a host with stdin closed).</summary>
    private static int AboveStandardDescriptors(int fd)
    {
        if (fd is < 0 or >= 3)
        {
            return fd;
        }

        int moved = LibC.Fcntl(fd, LibC.F_DUPFD_CLOEXEC, 3);
        LibC.Close(fd);
        return moved;
    }

    private static void WaitForEndOfFile(int fd)
    {
        byte buffer;
        while (true)
        {
            nint read = LibC.Read(fd, &buffer, 1);
            if (read == 0 || (read < 0 && LibC.Errno != LibC.EINTR))
            {
                return;
            }
        }
    }

    /// <summary>
    /// Stops the seized stub, which is at most a few instructions from (or asleep in) its park loop.
    /// </summary>
    private void StopParked(StubThread leader)
    {
        LibC.Ptrace(PtraceRequest.Interrupt, leader.ThreadId, 0, 0);
        var status = leader.Wait();
        for (int attempt = 0; status.Stopped && attempt < 1000; attempt++)
        {
            leader.GetRegisters(out var registers);
            bool parked = registers.Rip >= StubLayout.Park && registers.Rip <= StubLayout.Park + StubLayout.ParkLength;
            bool finishing = registers.Rip >= sites.CloseReturn && registers.Rip < sites.SetupTailEnd && registers.Rax == 0;
            if (status.Event == PtraceRequest.EventStop && (parked || finishing))
            {
                leader.Template = registers;
                return;
            }

            // Not at the end of a successful setup: a failing stub exits; let it run, and look again.
            leader.Resume(PtraceRequest.Cont);
            Thread.Sleep(1);
            LibC.Ptrace(PtraceRequest.Interrupt, leader.ThreadId, 0, 0);
            status = leader.Wait();
        }

        throw new PlatformUnavailableException(
            status.Stopped ? "the ptrace stub did not reach its park loop" : DescribeSetupFailure(status));
    }

    private static void Unmap(StubThread leader, ulong address, ulong length)
    {
        long result = leader.Inject(SeccompFilter.SysMunmap, address, length);
        if (result != 0)
        {
            throw new PlatformUnavailableException($"removing the stub's host mappings failed: {LibC.Describe((int)-result)}");
        }
    }

    /// <summary>What can forbid ptrace on this host, with the values found.</summary>
    private static string DescribePtraceRestrictions()
    {
        string yama = ReadOrNull("/proc/sys/kernel/yama/ptrace_scope")?.Trim() ?? "absent";
        string? status = ReadOrNull("/proc/self/status");
        string seccomp = status?.Split('\n').FirstOrDefault(l => l.StartsWith("Seccomp:", StringComparison.Ordinal))?[8..].Trim() ?? "unknown";
        string filtered = seccomp == "2"
            ? "this process runs under a seccomp filter (Seccomp: 2), e.g. a container profile that may block ptrace"
            : $"this process's seccomp mode is {seccomp}";
        return $"Yama ptrace_scope is {yama}; {filtered}; a container may also lack CAP_SYS_PTRACE";
    }

    private static string? ReadOrNull(string file)
    {
        try
        {
            return File.ReadAllText(file);
        }
        catch (IOException)
        {
            return null;
        }
        catch (UnauthorizedAccessException)
        {
            return null;
        }
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

        if (status.Signaled && status.TermSignal == LibC.SIGSYS)
        {
            return "the ptrace stub was killed by seccomp during setup (a host seccomp profile forbids its setup syscalls)";
        }

        return $"the ptrace stub {status.DescribeEnd()} during setup";
    }

    private int Spawn(int memoryFd, int readyFd)
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
        byte* root = stackalloc byte[2];
        root[0] = (byte)'/';
        root[1] = 0;

        LibC.PosixSpawnFileActionsInit(actions);
        LibC.PosixSpawnAttrInit(attributes);
        try
        {
            // The memory file becomes fd 0 and the ready pipe fd 1 (dup2 clears close-on-exec); the
            // stub closes every fd from 1 up. Its working directory is /, not a host directory of ours.
            int error = LibC.PosixSpawnFileActionsAddDup2(actions, memoryFd, StubLayout.MemoryFileDescriptor);
            error = error != 0 ? error : LibC.PosixSpawnFileActionsAddDup2(actions, readyFd, ReadyPipeDescriptor);
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
