using System.Buffers.Binary;
using AppKernel.Sentry.Native;
using AppKernel.Sentry.Syscalls;
using AppKernel.Sentry.Vfs;
using AppKernel.Vfs;

namespace AppKernel.Sentry.Kernel.Events;

/// <summary>
/// timerfd_create(2): a timer on CLOCK_REALTIME, CLOCK_MONOTONIC or CLOCK_BOOTTIME whose expirations
/// are read as an 8-byte count. Expirations are computed from the clock when asked (so a periodic
/// timer's overrun count is exact however late the read comes), and a host timerfd, made when the
/// timer is first armed and watched by the kernel's <see cref="HostPoller"/>, wakes pollers at the
/// next expiry with the host's precision. As on Linux, a fired timer wakes its waiters once and
/// is forwarded (re-armed for its next wake-up) only when read, re-set or queried.
/// </summary>
/// <remarks>
/// Expiry times are kept on <see cref="Kernel.Now"/> (CLOCK_MONOTONIC); an absolute time on another
/// clock is converted when the timer is set. The sandbox cannot set the realtime clock
/// (clock_settime and settimeofday are not implemented), so the clocks never jump:
/// TFD_TIMER_CANCEL_ON_SET is accepted and can never produce ECANCELED.
/// </remarks>
internal sealed unsafe class TimerFd : IFileOperations, IRecordFile, IEventListener
{
    public const int TFD_TIMER_ABSTIME = 1, TFD_TIMER_CANCEL_ON_SET = 2;

    private readonly object gate = new();
    private readonly HostPoller poller;
    private readonly WaitQueue hostEvents = new();
    private int hostTimer = -1;
    private bool armed;
    private long expiry;   // the next expiration not yet read, on Kernel.Now
    private long interval; // 0 for a one-shot timer
    private bool released;

    public TimerFd(int clock, HostPoller poller)
    {
        Clock = clock;
        this.poller = poller;
    }

    /// <summary>The clock the timer was created on.</summary>
    public int Clock { get; }

    public IInode? Inode => AnonymousInode.Instance;

    public bool IsStream => true;

    public WaitQueue Waiters { get; } = new();

    WaitQueue? IFileOperations.Waiters => Waiters;

    public PollEvents Poll(PollEvents mask)
    {
        lock (gate)
        {
            return Expirations(Kernel.Now) > 0 ? mask & (PollEvents.In | PollEvents.ReadNormal) : 0;
        }
    }

    public long Read(KernelTask task, Span<byte> buffer, bool nonBlocking)
    {
        if (buffer.Length < 8)
        {
            throw ErrnoException.Of(Errno.EINVAL);
        }

        ulong ticks;
        while (!TryTake(out ticks))
        {
            if (nonBlocking)
            {
                throw ErrnoException.Of(Errno.EAGAIN);
            }

            task.WaitUntil(Waiters, PollEvents.In, () =>
            {
                lock (gate)
                {
                    return Expirations(Kernel.Now) > 0;
                }
            });
        }

        BinaryPrimitives.WriteUInt64LittleEndian(buffer, ticks);
        return 8;
    }

    public long Write(KernelTask task, ReadOnlySpan<byte> buffer, bool nonBlocking) => throw ErrnoException.Of(Errno.EINVAL);

    /// <summary>timerfd_settime: arms (or with a zero <paramref name="value"/> disarms) the timer and returns the old setting.</summary>
    public (long Value, long Interval) Set(KernelTask task, int flags, long value, long newInterval)
    {
        lock (gate)
        {
            var old = Get(Kernel.Now);
            interval = newInterval;
            armed = value != 0;
            if (armed)
            {
                long now = Kernel.Now;
                expiry = (flags & TFD_TIMER_ABSTIME) != 0
                    ? now + (value - TimeSyscalls.ClockNow(task, Clock))
                    : now + value;
                Schedule(now);
            }
            else
            {
                SetHostTimer(0);
            }

            return old;
        }
    }

    /// <summary>timerfd_gettime: the time to the next expiration (0 when disarmed or fired once) and the interval.</summary>
    public (long Value, long Interval) Get()
    {
        lock (gate)
        {
            long now = Kernel.Now;
            var result = Get(now);
            if (armed && interval > 0 && now >= expiry)
            {
                // Linux forwards a fired periodic timer here, so it wakes pollers again at the next period.
                ScheduleAt(now, expiry + ((now - expiry) / interval + 1) * interval);
            }

            return result;
        }
    }

    private (long Value, long Interval) Get(long now)
    {
        if (!armed)
        {
            return (0, interval);
        }

        if (now < expiry)
        {
            return (expiry - now, interval);
        }

        if (interval == 0)
        {
            return (0, 0);
        }

        long next = expiry + ((now - expiry) / interval + 1) * interval;
        return (next - now, interval);
    }

    /// <summary>Expirations not yet read at <paramref name="now"/>; called under the gate.</summary>
    private ulong Expirations(long now)
    {
        if (!armed || now < expiry)
        {
            return 0;
        }

        return interval == 0 ? 1 : (ulong)((now - expiry) / interval) + 1;
    }

    private bool TryTake(out ulong ticks)
    {
        lock (gate)
        {
            long now = Kernel.Now;
            ticks = Expirations(now);
            if (ticks == 0)
            {
                return false;
            }

            if (interval == 0)
            {
                armed = false;
            }
            else
            {
                expiry += (long)ticks * interval;
                Schedule(now);
            }

            return true;
        }
    }

    private void Schedule(long now) => ScheduleAt(now, expiry);

    /// <summary>Arms the host timer for <paramref name="due"/> (on <see cref="Kernel.Now"/>); called under the gate.</summary>
    private void ScheduleAt(long now, long due)
    {
        if (released)
        {
            return;
        }

        if (hostTimer < 0)
        {
            hostTimer = LibC.TimerfdCreate(LibC.CLOCK_MONOTONIC, LibC.TFD_NONBLOCK | LibC.TFD_CLOEXEC);
            if (hostTimer < 0)
            {
                throw LibC.HostError("timerfd_create");
            }

            hostEvents.Register(this, PollEvents.All);
            poller.Watch(hostTimer, hostEvents);
        }

        SetHostTimer(Math.Max(1, due - now));
    }

    /// <summary>Arms the host timer to fire once after <paramref name="relative"/> ns; 0 disarms it.</summary>
    private void SetHostTimer(long relative)
    {
        if (hostTimer < 0)
        {
            return;
        }

        var spec = new LibC.HostItimerspec { ValueSeconds = relative / 1_000_000_000, ValueNanoseconds = relative % 1_000_000_000 };
        LibC.TimerfdSettime(hostTimer, 0, &spec, null);
    }

    /// <summary>The host timer fired (on the poller's thread).</summary>
    void IEventListener.OnEvents(PollEvents events)
    {
        lock (gate)
        {
            long now = Kernel.Now;
            if (!armed)
            {
                return;
            }

            if (now < expiry)
            {
                Schedule(now); // the two clocks' rounding: not quite due yet
                return;
            }
        }

        Waiters.Notify(PollEvents.In | PollEvents.ReadNormal);
    }

    public void Release()
    {
        lock (gate)
        {
            released = true;
            armed = false;
            if (hostTimer >= 0)
            {
                poller.Unwatch(hostTimer);
                LibC.Close(hostTimer);
                hostTimer = -1;
            }
        }
    }
}
