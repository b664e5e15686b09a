using System.Runtime.InteropServices;
using AppKernel.Sentry.Abi;
using AppKernel.Sentry.Kernel;
using AppKernel.Sentry.Kernel.Events;
using AppKernel.Syscalls;
using AppKernel.Vfs;

namespace AppKernel.Sentry.Syscalls;

/// <summary>
/// poll, ppoll, select and pselect6. A call polls every fd, and if none is ready, sleeps on all
/// their wait queues at once (<see cref="PollTable"/>) until one changes, the timeout passes or a
/// signal comes. Restart rules are Linux's: poll restarts with the time left through
/// restart_syscall (ERESTART_RESTARTBLOCK), select, pselect6 and ppoll with ERESTARTNOHAND after
/// writing the time left back; all give EINTR when a handler runs. ppoll and pselect6 wait under
/// the caller's temporary signal mask, which stays in force for the handler's delivery and is
/// replaced by the original after it (<see cref="KernelTask.BeginTemporarySignalMask"/>).
/// </summary>
internal static class PollSyscalls
{
    private const int PollfdSize = 8;
    private const int STICKY_TIMEOUTS = 0x4000000;

    // What select counts as readable, writable and exceptional (POLLIN_SET, POLLOUT_SET, POLLEX_SET).
    private const PollEvents InSet = PollEvents.ReadNormal | PollEvents.ReadBand | PollEvents.In | PollEvents.HangUp | PollEvents.Error;
    private const PollEvents OutSet = PollEvents.WriteBand | PollEvents.WriteNormal | PollEvents.Out | PollEvents.Error;
    private const PollEvents ExSet = PollEvents.Priority;

    [Syscall(7)]
    public static SyscallResult Poll(ISyscallContext c)
    {
        var t = c.Task();
        var a = c.Arguments;
        int timeout = (int)a.A2;
        long deadline = timeout < 0 ? -1 : Kernel.Kernel.Now + timeout * 1_000_000L;
        return RestartablePoll(t, a.A0, (uint)a.A1, deadline, timeout == 0);
    }

    /// <summary>poll, and its restart through restart_syscall with the same deadline.</summary>
    private static SyscallResult RestartablePoll(KernelTask t, ulong fds, uint count, long deadline, bool zeroTimeout)
    {
        var result = DoPoll(t, fds, count, deadline, zeroTimeout);
        if (result.IsError && result.Errno == Errno.ERESTARTNOHAND)
        {
            t.RestartBlock = task => RestartablePoll(task, fds, count, deadline, zeroTimeout);
            return SyscallResult.Error(Errno.ERESTART_RESTARTBLOCK);
        }

        return result;
    }

    [Syscall(271)]
    public static SyscallResult Ppoll(ISyscallContext c)
    {
        var t = c.Task();
        var a = c.Arguments;
        var (deadline, zero) = ReadTimespecTimeout(t, a.A2);
        ulong? old = TemporaryMask.Apply(t, a.A3, a.A4);
        SyscallResult result;
        try
        {
            result = DoPoll(t, a.A0, (uint)a.A1, deadline, zero);
        }
        catch (ErrnoException e)
        {
            result = SyscallResult.Error(e.Errno); // the time left is written back after errors too
        }

        // Decided before the timeout is written back, which may turn the restart into EINTR.
        TemporaryMask.Finish(t, old, result.IsError && result.Errno == Errno.ERESTARTNOHAND);
        return FinishTimeout(t, a.A2, deadline, zero, timeval: false, result);
    }

    /// <summary>do_sys_poll: ERESTARTNOHAND when a signal ended the wait.</summary>
    private static SyscallResult DoPoll(KernelTask t, ulong address, uint count, long deadline, bool zeroTimeout)
    {
        if (count > (uint)t.Group.Limits.OpenFilesLimit)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        var fds = new LinuxPollfd[count];
        if (count > 0)
        {
            t.Mm.Read(address, MemoryMarshal.AsBytes(fds.AsSpan()));
        }

        int ready = 0;
        bool interrupted = false;
        using (var table = new PollTable(t))
        {
            int Scan()
            {
                int n = 0;
                for (int i = 0; i < fds.Length; i++)
                {
                    ref var entry = ref fds[i];
                    PollEvents revents = 0;
                    if (entry.Fd >= 0)
                    {
                        var wanted = (PollEvents)(ushort)entry.Events | PollEvents.Error | PollEvents.HangUp;
                        revents = table.Poll(entry.Fd, wanted);
                        revents &= wanted | PollEvents.Invalid;
                    }

                    entry.Revents = (short)(ushort)revents;
                    if (revents != 0)
                    {
                        n++;
                    }
                }

                return n;
            }

            ready = Scan();
            if (ready == 0 && !zeroTimeout)
            {
                try
                {
                    t.WaitUntil(null, 0, () => (ready = Scan()) > 0, deadline);
                }
                catch (ErrnoException e) when (e.Errno == Errno.ERESTARTSYS)
                {
                    interrupted = true;
                }
            }
        }

        // Every revents goes back, whatever the outcome (zeros on a timeout or a signal).
        for (int i = 0; i < fds.Length; i++)
        {
            t.Mm.WriteValue(address + (ulong)(i * PollfdSize) + 6, fds[i].Revents);
        }

        return interrupted ? SyscallResult.Error(Errno.ERESTARTNOHAND) : SyscallResult.Ok(ready);
    }

    [Syscall(23)]
    public static SyscallResult Select(ISyscallContext c)
    {
        var t = c.Task();
        var a = c.Arguments;
        long deadline = -1;
        bool zero = false;
        if (a.A4 != 0)
        {
            var tv = t.Mm.ReadValue<LinuxTimeval>(a.A4);
            (deadline, zero) = Timeout(tv.Seconds + tv.Microseconds / 1_000_000, tv.Microseconds % 1_000_000 * 1000);
        }

        SyscallResult result;
        try
        {
            result = CoreSelect(t, (int)a.A0, a.A1, a.A2, a.A3, deadline, zero);
        }
        catch (ErrnoException e)
        {
            result = SyscallResult.Error(e.Errno); // the time left is written back after errors too
        }

        return FinishTimeout(t, a.A4, deadline, zero, timeval: true, result);
    }

    [Syscall(270)]
    public static SyscallResult Pselect6(ISyscallContext c)
    {
        var t = c.Task();
        var a = c.Arguments;

        // The sixth argument points at { const sigset_t *ss; size_t ss_len; }.
        ulong maskAddress = 0, maskSize = 0;
        if (a.A5 != 0)
        {
            var pack = t.Mm.ReadValue<LinuxIovec>(a.A5);
            (maskAddress, maskSize) = (pack.Base, pack.Length);
        }

        var (deadline, zero) = ReadTimespecTimeout(t, a.A4);
        ulong? old = TemporaryMask.Apply(t, maskAddress, maskSize);
        SyscallResult result;
        try
        {
            result = CoreSelect(t, (int)a.A0, a.A1, a.A2, a.A3, deadline, zero);
        }
        catch (ErrnoException e)
        {
            result = SyscallResult.Error(e.Errno); // the time left is written back after errors too
        }

        // Decided before the timeout is written back, which may turn the restart into EINTR.
        TemporaryMask.Finish(t, old, result.IsError && result.Errno == Errno.ERESTARTNOHAND);
        return FinishTimeout(t, a.A4, deadline, zero, timeval: false, result);
    }

    /// <summary>core_sys_select: the sets are written back only when the call did not fail or get interrupted.</summary>
    private static SyscallResult CoreSelect(KernelTask t, int n, ulong inAddress, ulong outAddress, ulong exAddress, long deadline, bool zeroTimeout)
    {
        if (n < 0)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        n = Math.Min(n, t.Fds.Capacity);
        int words = (n + 63) / 64;
        var inSet = ReadSet(t, inAddress, words);
        var outSet = ReadSet(t, outAddress, words);
        var exSet = ReadSet(t, exAddress, words);

        // Every fd named must be open (max_select_fd).
        for (int fd = 0; fd < n; fd++)
        {
            if (IsSet(inSet, fd) || IsSet(outSet, fd) || IsSet(exSet, fd))
            {
                if (!t.Fds.TryGet(fd, out _))
                {
                    return SyscallResult.Error(Errno.EBADF);
                }
            }
        }

        var resultIn = new ulong[words];
        var resultOut = new ulong[words];
        var resultEx = new ulong[words];
        int ready = 0;
        bool interrupted = false;
        using (var table = new PollTable(t))
        {
            int Scan()
            {
                Array.Clear(resultIn);
                Array.Clear(resultOut);
                Array.Clear(resultEx);
                int count = 0;
                for (int fd = 0; fd < n; fd++)
                {
                    bool wantIn = IsSet(inSet, fd), wantOut = IsSet(outSet, fd), wantEx = IsSet(exSet, fd);
                    if (!wantIn && !wantOut && !wantEx)
                    {
                        continue;
                    }

                    var mask = ExSet | (wantIn ? InSet : 0) | (wantOut ? OutSet : 0);
                    var events = table.Poll(fd, mask, pathIsReady: true);
                    if (wantIn && (events & InSet) != 0)
                    {
                        Set(resultIn, fd);
                        count++;
                    }

                    if (wantOut && (events & OutSet) != 0)
                    {
                        Set(resultOut, fd);
                        count++;
                    }

                    if (wantEx && (events & ExSet) != 0)
                    {
                        Set(resultEx, fd);
                        count++;
                    }
                }

                return count;
            }

            ready = Scan();
            if (ready == 0 && !zeroTimeout)
            {
                try
                {
                    t.WaitUntil(null, 0, () => (ready = Scan()) > 0, deadline);
                }
                catch (ErrnoException e) when (e.Errno == Errno.ERESTARTSYS)
                {
                    interrupted = true;
                }
            }
        }

        if (interrupted)
        {
            return SyscallResult.Error(Errno.ERESTARTNOHAND);
        }

        WriteSet(t, inAddress, resultIn);
        WriteSet(t, outAddress, resultOut);
        WriteSet(t, exAddress, resultEx);
        return SyscallResult.Ok(ready);
    }

    private static ulong[]? ReadSet(KernelTask t, ulong address, int words)
    {
        if (address == 0)
        {
            return null;
        }

        var set = new ulong[words];
        t.Mm.Read(address, MemoryMarshal.AsBytes(set.AsSpan()));
        return set;
    }

    private static void WriteSet(KernelTask t, ulong address, ulong[] set)
    {
        if (address != 0)
        {
            t.Mm.Write(address, MemoryMarshal.AsBytes(set.AsSpan()));
        }
    }

    private static bool IsSet(ulong[]? set, int fd) => set is not null && (set[fd >> 6] & (1UL << (fd & 63))) != 0;

    private static void Set(ulong[] set, int fd) => set[fd >> 6] |= 1UL << (fd & 63);

    /// <summary>A timeout in a struct timespec (null for none): the deadline on Kernel.Now, and whether it is zero.</summary>
    internal static (long Deadline, bool Zero) ReadTimespecTimeout(KernelTask t, ulong address)
    {
        if (address == 0)
        {
            return (-1, false);
        }

        var ts = t.Mm.ReadValue<LinuxTimespec>(address);
        return Timeout(ts.Seconds, ts.Nanoseconds);
    }

    /// <summary>poll_select_set_timeout: EINVAL for a negative or unnormalised time.</summary>
    internal static (long Deadline, bool Zero) Timeout(long seconds, long nanoseconds)
    {
        if (seconds < 0 || nanoseconds < 0 || nanoseconds >= 1_000_000_000)
        {
            throw ErrnoException.Of(Errno.EINVAL);
        }

        if (seconds == 0 && nanoseconds == 0)
        {
            return (Kernel.Kernel.Now, true);
        }

        // Far-future timeouts saturate rather than overflow.
        long span = seconds >= long.MaxValue / 2_000_000_000 ? long.MaxValue / 2 : seconds * 1_000_000_000 + nanoseconds;
        return (Kernel.Kernel.Now + span, false);
    }

    /// <summary>
    /// poll_select_finish: writes the time left back into the caller's timeout (not for a zero
    /// one, nor under STICKY_TIMEOUTS); if that write faults, an interrupted call cannot be
    /// restarted and gives EINTR.
    /// </summary>
    private static SyscallResult FinishTimeout(KernelTask t, ulong address, long deadline, bool zero, bool timeval, SyscallResult result)
    {
        if (address == 0 || zero)
        {
            return result;
        }

        bool interrupted = result.IsError && result.Errno == Errno.ERESTARTNOHAND;
        if ((t.Group.Personality & STICKY_TIMEOUTS) == 0)
        {
            long left = Math.Max(0, deadline - Kernel.Kernel.Now);
            try
            {
                if (timeval)
                {
                    t.Mm.WriteValue(address, new LinuxTimeval { Seconds = left / 1_000_000_000, Microseconds = left % 1_000_000_000 / 1000 });
                }
                else
                {
                    t.Mm.WriteValue(address, new LinuxTimespec { Seconds = left / 1_000_000_000, Nanoseconds = left % 1_000_000_000 });
                }

                return result;
            }
            catch (ErrnoException)
            {
                // Not updated: fall through to the sticky rule.
            }
        }

        return interrupted ? SyscallResult.Error(Errno.EINTR) : result;
    }
}

/// <summary>
/// The temporary signal mask of ppoll, pselect6, epoll_pwait and epoll_pwait2 (set_user_sigmask
/// and restore_saved_sigmask_unless).
/// </summary>
internal static class TemporaryMask
{
    private const ulong SigsetSize = 8;

    /// <summary>Installs the mask at <paramref name="address"/> (none when 0) and returns the mask to restore.</summary>
    public static ulong? Apply(KernelTask t, ulong address, ulong size)
    {
        if (address == 0)
        {
            return null;
        }

        if (size != SigsetSize)
        {
            throw ErrnoException.Of(Errno.EINVAL);
        }

        ulong mask = t.Mm.ReadValue<ulong>(address);
        ulong old = t.SignalMask;
        t.BeginTemporarySignalMask(mask);
        return old;
    }

    /// <summary>
    /// Restores the caller's mask now, or, when a signal interrupted the wait, leaves the temporary
    /// one in force for its delivery and has the original restored after the handler.
    /// </summary>
    public static void Finish(KernelTask t, ulong? old, bool interrupted)
    {
        if (old is null)
        {
            return;
        }

        t.EndTemporarySignalMask(interrupted);
    }
}
