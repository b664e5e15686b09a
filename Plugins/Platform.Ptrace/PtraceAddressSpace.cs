using AppKernel.Memory;
using AppKernel.Platform.Ptrace.Native;
using AppKernel.Platform.Ptrace.Stub;

namespace AppKernel.Platform.Ptrace;

/// <summary>
/// A program address space under ptrace: one stub process whose mappings mirror the memory
/// manager's decisions. Map, Unmap and Protect inject mmap (of the memory file, MAP_SHARED |
/// MAP_FIXED), munmap and mprotect into a stopped stub thread.
/// </summary>
/// <remarks>
/// <para>Threading contract. The fast path injects into a stopped stub thread that the calling host
/// thread traces: call Map/Unmap/Protect from the host thread that runs a context of this address
/// space (between two <see cref="PtraceExecutionContext.Switch"/> calls, when its stub thread is
/// stopped). From any other thread the call still works, but goes through the platform's control
/// thread, which traces the stub's leader thread (a cross-thread hand-off, tens of microseconds).</para>
/// <para>The stub's leader thread never runs program code: each execution context gets its own stub
/// thread, cloned by the control thread. Disposing kills the stub process and reaps every thread.</para>
/// <para>Only addresses below <see cref="PtracePlatform.MaxUserAddress"/> may be mapped.</para>
/// </remarks>
public sealed class PtraceAddressSpace : IAddressSpace
{
    private const ulong PageMask = 0xfff;

    private readonly PtracePlatform platform;
    private readonly ControlThread control;
    private readonly StubThread leader;
    private readonly List<StubThread> threads = [];
    private int disposed;

    internal PtraceAddressSpace(PtracePlatform platform, ControlThread control, StubThread leader)
    {
        this.platform = platform;
        this.control = control;
        this.leader = leader;
        leader.ReapDeadSiblings = ReapDeadThreads;
    }

    /// <summary>The host process id of the stub process (for diagnostics, e.g. /proc/PID/maps).</summary>
    public int StubProcessId => leader.ProcessId;

    internal bool IsDisposed => Volatile.Read(ref disposed) != 0;

    internal StubThread Leader => leader;

    /// <inheritdoc/>
    /// <exception cref="ArgumentOutOfRangeException">The range is not page-aligned or reaches <see cref="PtracePlatform.MaxUserAddress"/>.</exception>
    /// <exception cref="ErrnoException">The host mmap failed (e.g. ENOMEM when the host's map count limit is reached).</exception>
    public void Map(ulong address, ulong length, long fileOffset, MemoryAccess access)
    {
        CheckRange(address, length);
        if (fileOffset < 0 || ((ulong)fileOffset & PageMask) != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(fileOffset), $"file offset 0x{fileOffset:x} is not a page-aligned offset");
        }

        long result = Inject(SeccompFilter.SysMmap, address, length, (ulong)(int)(access & MemoryAccess.All), SeccompFilter.MmapFlags, StubLayout.MemoryFileDescriptor, (ulong)fileOffset);
        if ((ulong)result != address)
        {
            throw Failure("mmap", result, address, length);
        }
    }

    /// <inheritdoc/>
    public void Unmap(ulong address, ulong length)
    {
        CheckRange(address, length);
        long result = Inject(SeccompFilter.SysMunmap, address, length, 0, 0, 0, 0);
        if (result != 0)
        {
            throw Failure("munmap", result, address, length);
        }
    }

    /// <inheritdoc/>
    public void Protect(ulong address, ulong length, MemoryAccess access)
    {
        CheckRange(address, length);
        long result = Inject(SeccompFilter.SysMprotect, address, length, (ulong)(int)(access & MemoryAccess.All), 0, 0, 0);
        if (result != 0)
        {
            throw Failure("mprotect", result, address, length);
        }
    }

    /// <summary>Kills the stub process and reaps all its threads.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref disposed, 1) != 0)
        {
            return;
        }

        platform.Forget(this);
        try
        {
            control.Invoke(KillAndReap);
        }
        catch (ObjectDisposedException)
        {
            KillAndReap(); // the platform is going away; reap from here
        }
    }

    /// <summary>Creates a stub thread for a new execution context; the control thread holds it stopped until a host thread adopts it.</summary>
    internal PtraceExecutionContext CreateContext(bool pinToCpu)
    {
        ObjectDisposedException.ThrowIf(IsDisposed, this);
        var thread = control.Invoke(() =>
        {
            long result = leader.Inject(SeccompFilter.SysClone, SeccompFilter.CloneFlags, 0, 0, 0, 0, 0, out int tid);
            if (result < 0 || tid == 0)
            {
                throw new InvalidOperationException($"creating a stub thread failed: {LibC.Describe((int)-result)}");
            }

            var created = new StubThread(leader.ProcessId, tid);
            lock (threads)
            {
                threads.RemoveAll(t => t.Reaped);
                threads.Add(created);
            }

            // A thread cloned from a seized one starts traced by us, in an event stop.
            var status = created.WaitBlocking();
            if (!status.Stopped)
            {
                throw created.Died(status);
            }

            created.Template = leader.Template;
            return created;
        });
        return new PtraceExecutionContext(this, thread, pinToCpu);
    }

    /// <summary>Lets a held stub thread go: it spins in the park loop, untraced, until its new tracer seizes it.</summary>
    internal void ReleaseHeldThread(StubThread thread)
    {
        ObjectDisposedException.ThrowIf(IsDisposed, this);
        control.Invoke(() =>
        {
            Registers registers = thread.Template;
            registers.Rip = StubLayout.Park;
            registers.OrigRax = ulong.MaxValue;
            thread.SetRegisters(registers);
            thread.Check(LibC.Ptrace(PtraceRequest.Detach, thread.ThreadId, 0, 0), "PTRACE_DETACH");
        });
    }

    /// <summary>Ends a stub thread the control thread still holds.</summary>
    internal void ExitHeldThread(StubThread thread) => control.Invoke(() => thread.Inject(SeccompFilter.SysExit));

    /// <summary>Runs a host syscall in the stub (the fast path when the caller traces a stopped stub thread, else via the control thread).</summary>
    internal long Inject(long number, ulong a0, ulong a1, ulong a2, ulong a3, ulong a4, ulong a5)
    {
        ObjectDisposedException.ThrowIf(IsDisposed, this);
        var mine = PtraceExecutionContext.FindTracedByCaller(this);
        if (mine is not null)
        {
            return mine.Inject(number, a0, a1, a2, a3, a4, a5);
        }

        return control.Invoke(() => leader.Inject(number, a0, a1, a2, a3, a4, a5));
    }

    private void KillAndReap()
    {
        LibC.Kill(leader.ProcessId, LibC.SIGKILL);

        // Reap the other threads first: the kernel reports the leader only once they are gone.
        StubThread[] others;
        lock (threads)
        {
            others = [.. threads];
        }

        foreach (var thread in others)
        {
            try
            {
                while (!thread.Reaped && thread.WaitBlocking().Stopped)
                {
                }
            }
            catch (StubProcessExitedException)
            {
                // Reaped by its own tracer meanwhile.
            }
        }

        StubLauncher.KillAndReap(leader);
    }

    /// <summary>The leader's watchdog: collects threads of a dead stub that no tracer has waited for.</summary>
    private unsafe void ReapDeadThreads()
    {
        lock (threads)
        {
            foreach (var thread in threads)
            {
                int status;
                if (!thread.Reaped && LibC.WaitPid(thread.ThreadId, &status, LibC.WALL | LibC.WNOHANG) == thread.ThreadId &&
                    !new WaitStatus(status).Stopped)
                {
                    thread.Reaped = true;
                }
            }
        }
    }

    private static void CheckRange(ulong address, ulong length)
    {
        if ((address & PageMask) != 0 || (length & PageMask) != 0 || length == 0 ||
            address + length < address || address + length > StubLayout.Base)
        {
            throw new ArgumentOutOfRangeException(
                nameof(address),
                $"range 0x{address:x}+0x{length:x} must be page-aligned, non-empty and below 0x{StubLayout.Base:x} (the platform's reserved area)");
        }
    }

    private static ErrnoException Failure(string call, long result, ulong address, ulong length)
    {
        var errno = result < 0 && result > -4096 ? (Errno)(int)-result : Errno.EFAULT;
        return new ErrnoException(errno, $"host {call} of 0x{address:x}+0x{length:x} in the stub failed");
    }
}
