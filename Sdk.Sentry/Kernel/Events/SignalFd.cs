using System.Runtime.InteropServices;
using AppKernel.Sentry.Abi;
using AppKernel.Vfs;

namespace AppKernel.Sentry.Kernel.Events;

/// <summary>
/// signalfd(2): reading dequeues pending signals in the file's mask, first the reading thread's
/// own then its process's, as struct signalfd_siginfo records. As on Linux the file has no owner:
/// readiness and reads concern the task that polls or reads (after fork a child reads its own
/// signals), and a task is woken through its process's <see cref="ThreadGroup.SignalWaiters"/>,
/// told whenever any signal is queued there.
/// </summary>
internal sealed class SignalFd : IFileOperations, IRecordFile
{
    public const int RecordSize = 128;

    private readonly ThreadGroup creator;
    private ulong mask;

    public SignalFd(ThreadGroup creator, ulong mask)
    {
        this.creator = creator;
        this.mask = mask;
    }

    /// <summary>The signals the file reads (never SIGKILL or SIGSTOP). Changing it wakes waiters, as signalfd4 on an existing fd does.</summary>
    public ulong Mask
    {
        get => Volatile.Read(ref mask);
        set
        {
            Volatile.Write(ref mask, value & ~Signals.Unblockable);
            Waiters.Notify(PollEvents.In | PollEvents.ReadNormal);
        }
    }

    public IInode? Inode => AnonymousInode.Instance;

    public bool IsStream => true;

    /// <summary>The signal queue of the calling task's process (Linux's current->sighand->signalfd_wqh).</summary>
    public WaitQueue Waiters => (KernelTask.Current?.Group ?? creator).SignalWaiters;

    WaitQueue? IFileOperations.Waiters => Waiters;

    public PollEvents Poll(PollEvents events)
    {
        var task = KernelTask.Current;
        ulong pending = task is not null
            ? task.Pending.Pending | task.Group.SharedPending.Pending
            : creator.SharedPending.Pending;
        return (pending & Mask) != 0 ? events & (PollEvents.In | PollEvents.ReadNormal) : 0;
    }

    public long Read(KernelTask task, Span<byte> buffer, bool nonBlocking)
    {
        int capacity = buffer.Length / RecordSize;
        if (capacity == 0)
        {
            throw ErrnoException.Of(Errno.EINVAL);
        }

        int count = 0;
        while (count < capacity)
        {
            ulong blocked = ~Mask;
            if (!task.DequeueSignal(blocked, out var info))
            {
                if (count > 0)
                {
                    break;
                }

                if (nonBlocking)
                {
                    throw ErrnoException.Of(Errno.EAGAIN);
                }

                task.WaitUntil(task.Group.SignalWaiters, PollEvents.In,
                    () => ((task.Pending.Pending | task.Group.SharedPending.Pending) & Mask) != 0);
                continue;
            }

            var record = ToRecord(info);
            MemoryMarshal.Write(buffer.Slice(count * RecordSize, RecordSize), in record);
            count++;
        }

        return count * RecordSize;
    }

    public long Write(KernelTask task, ReadOnlySpan<byte> buffer, bool nonBlocking) => throw ErrnoException.Of(Errno.EINVAL);

    /// <summary>Linux's signalfd_copyinfo: the fields that the siginfo's layout (by signal and si_code) carries.</summary>
    public static LinuxSignalfdSiginfo ToRecord(in SignalInfo info)
    {
        var record = new LinuxSignalfdSiginfo { Signo = (uint)info.Signo, Errno = info.Errno, Code = info.Code };
        switch (Layout(info.Signo, info.Code))
        {
            case SiginfoLayout.Kill:
                record.Pid = (uint)info.Pid;
                record.Uid = (uint)info.Uid;
                break;
            case SiginfoLayout.Timer:
                record.Tid = (uint)info.TimerId;
                record.Overrun = (uint)info.Overrun;
                record.Ptr = info.Value;
                record.Int = (int)info.Value;
                break;
            case SiginfoLayout.Poll:
                record.Band = (uint)info.Address; // si_band shares si_addr's place
                record.Fd = info.Status;          // si_fd at offset 24
                break;
            case SiginfoLayout.Fault:
                record.Addr = info.Address;
                break;
            case SiginfoLayout.Child:
                record.Pid = (uint)info.Pid;
                record.Uid = (uint)info.Uid;
                record.Status = info.Status;
                record.Utime = (ulong)info.UserTime;
                record.Stime = (ulong)info.SystemTime;
                break;
            case SiginfoLayout.Rt:
                record.Pid = (uint)info.Pid;
                record.Uid = (uint)info.Uid;
                record.Ptr = info.Value;
                record.Int = (int)info.Value;
                break;
            case SiginfoLayout.Sys:
                record.CallAddr = info.Address;
                record.Syscall = info.Status;              // si_syscall at offset 24
                record.Arch = (uint)(info.Value >> 32);    // si_arch at offset 28
                break;
        }

        return record;
    }

    private enum SiginfoLayout
    {
        Kill,
        Timer,
        Poll,
        Fault,
        Child,
        Rt,
        Sys,
    }

    /// <summary>Linux's siginfo_layout for x86-64.</summary>
    private static SiginfoLayout Layout(int signal, int code)
    {
        const int NSIGILL = 11, NSIGFPE = 15, NSIGSEGV = 10, NSIGBUS = 5, NSIGTRAP = 6, NSIGCHLD = 6, NSIGPOLL = 6, NSIGSYS = 2;
        if (code > Signals.SI_USER && code < Signals.SI_KERNEL)
        {
            (int limit, SiginfoLayout layout) specific = signal switch
            {
                Signals.SIGILL => (NSIGILL, SiginfoLayout.Fault),
                Signals.SIGFPE => (NSIGFPE, SiginfoLayout.Fault),
                Signals.SIGSEGV => (NSIGSEGV, SiginfoLayout.Fault),
                Signals.SIGBUS => (NSIGBUS, SiginfoLayout.Fault),
                Signals.SIGTRAP => (NSIGTRAP, SiginfoLayout.Fault),
                Signals.SIGCHLD => (NSIGCHLD, SiginfoLayout.Child),
                Signals.SIGIO => (NSIGPOLL, SiginfoLayout.Poll),
                Signals.SIGSYS => (NSIGSYS, SiginfoLayout.Sys),
                _ => (0, SiginfoLayout.Kill),
            };
            if (code <= specific.limit)
            {
                return specific.layout;
            }

            return code <= NSIGPOLL ? SiginfoLayout.Poll : SiginfoLayout.Kill;
        }

        return code switch
        {
            Signals.SI_TIMER => SiginfoLayout.Timer,
            -5 /* SI_SIGIO */ => SiginfoLayout.Poll,
            < 0 => SiginfoLayout.Rt,
            _ => SiginfoLayout.Kill,
        };
    }
}
