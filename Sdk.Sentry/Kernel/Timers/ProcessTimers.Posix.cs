using AppKernel.Sentry.Abi;

namespace AppKernel.Sentry.Kernel.Timers;

// The POSIX timers of timer_create(2), with Linux's (6.13 and later) signal rules:
// - a timer's signal is queued at most once and never merges with other instances of the signal;
// - a periodic timer does not run while its signal waits: the delivery re-arms it, counting the
//   periods that passed as the overrun (si_overrun, timer_getoverrun);
// - timer_settime and timer_delete make a queued signal of the timer stale: it is dropped when
//   dequeued, and sigpending may show it until then;
// - a periodic timer whose signal is ignored when it fires is parked, and comes back (its signal
//   queued at once) when the signal's SIG_IGN disposition is replaced.
internal sealed partial class ProcessTimers
{
    private readonly Dictionary<int, PosixTimer?> posixTimers = new();
    private int nextTimerId;

    /// <summary>A setting in nanoseconds (itimerspec): the time left, and the interval.</summary>
    public readonly record struct TimerSetting(long Value, long Interval);

    /// <summary>POSIX timers that exist (each holds a RLIMIT_SIGPENDING slot, as on Linux).</summary>
    public int PosixTimerCount
    {
        get
        {
            lock (gate)
            {
                return posixTimers.Count;
            }
        }
    }

    /// <summary>Timer signals waiting in signal queues (already charged by their timers).</summary>
    public int QueuedTimerSignals
    {
        get
        {
            lock (gate)
            {
                int queued = 0;
                foreach (var timer in posixTimers.Values)
                {
                    if (timer is { Queued: true })
                    {
                        queued++;
                    }
                }

                return queued;
            }
        }
    }

    /// <summary>Takes the next free timer id (ids count up per process, as Linux hands them out; execve does not reset them).</summary>
    public int ReserveTimerId()
    {
        lock (gate)
        {
            for (long tries = 0; tries <= int.MaxValue; tries++)
            {
                int id = nextTimerId & int.MaxValue;
                nextTimerId = (nextTimerId + 1) & int.MaxValue;
                if (posixTimers.TryAdd(id, null))
                {
                    return id;
                }
            }

            throw ErrnoException.Of(Errno.EAGAIN);
        }
    }

    /// <summary>Gives back an id whose timer_create failed.</summary>
    public void ReleaseTimerId(int id)
    {
        lock (gate)
        {
            if (posixTimers.TryGetValue(id, out var timer) && timer is null)
            {
                posixTimers.Remove(id);
            }
        }
    }

    /// <summary>Makes a created timer visible under its reserved id.</summary>
    public void Publish(PosixTimer timer)
    {
        lock (gate)
        {
            if (stopped)
            {
                posixTimers.Remove(timer.Id);
                timer.Valid = false;
                return;
            }

            posixTimers[timer.Id] = timer;
        }
    }

    /// <summary>The clock of timer <paramref name="id"/>; false for an unknown id.</summary>
    public bool TryGetClock(int id, out int clock, out bool cpu)
    {
        lock (gate)
        {
            if (!posixTimers.TryGetValue(id, out var timer) || timer is null)
            {
                clock = 0;
                cpu = false;
                return false;
            }

            clock = timer.ClockId;
            cpu = timer.IsCpuTimer;
            return true;
        }
    }

    /// <summary>timer_gettime: false for an unknown id.</summary>
    public bool TryGetTimer(int id, out TimerSetting setting)
    {
        lock (gate)
        {
            if (!posixTimers.TryGetValue(id, out var timer) || timer is null)
            {
                setting = default;
                return false;
            }

            setting = SettingLocked(timer);
            return true;
        }
    }

    /// <summary>timer_getoverrun: the overrun of the last delivered signal, at most INT_MAX; -1 for an unknown id.</summary>
    public int GetOverrun(int id)
    {
        lock (gate)
        {
            return posixTimers.TryGetValue(id, out var timer) && timer is not null ? ClampOverrun(timer.OverrunLast) : -1;
        }
    }

    /// <summary>
    /// timer_settime. For wall-clock timers <paramref name="value"/> is already a deadline on the
    /// monotonic timeline (0 disarms); for CPU timers it is in the clock's nanoseconds, absolute when
    /// <paramref name="absolute"/>. False for an unknown id.
    /// </summary>
    public bool TrySetTimer(int id, long value, long interval, bool absolute, out TimerSetting old)
    {
        bool cpu;
        lock (gate)
        {
            if (!posixTimers.TryGetValue(id, out var timer) || timer is null)
            {
                old = default;
                return false;
            }

            cpu = timer.IsCpuTimer;
            timer.SignalSeq++; // a queued signal of the old setting is stale now
            old = SettingLocked(timer);
            Service.Cancel(timer);
            timer.Status = PosixTimerStatus.Disarmed;
            timer.Interval = value != 0 ? interval : 0;
            timer.OverrunLast = 0;
            timer.Overrun = -1;
            if (value == 0)
            {
                timer.Expires = 0;
            }
            else if (!cpu)
            {
                timer.Expires = value;
                if (!timer.SigevNone && !stopped)
                {
                    timer.Status = PosixTimerStatus.Armed;
                    Service.Schedule(timer, value);
                }
            }
            else
            {
                long clock = CpuClockNowLocked(timer);
                timer.Expires = absolute ? value : SaturatingAdd(value, clock);
                if (!timer.SigevNone && !stopped)
                {
                    if (clock < timer.Expires)
                    {
                        timer.Status = PosixTimerStatus.Armed;
                    }
                    else
                    {
                        // Already past: it fires now, even if the clock never moves again.
                        FireCpuTimerLocked(timer);
                    }
                }
            }
        }

        if (cpu)
        {
            UpdateCpuWatch();
        }

        return true;
    }

    /// <summary>timer_delete: false for an unknown id. A queued signal of the timer is dropped when dequeued.</summary>
    public bool TryDeleteTimer(int id)
    {
        lock (gate)
        {
            if (!posixTimers.TryGetValue(id, out var timer) || timer is null)
            {
                return false;
            }

            DeleteLocked(timer);
            posixTimers.Remove(id);
        }

        return true;
    }

    private void DeleteLocked(PosixTimer timer)
    {
        timer.SignalSeq++;
        timer.Valid = false;
        timer.Parked = false;
        timer.Status = PosixTimerStatus.Disarmed;
        Service.Cancel(timer);
    }

    private void DeleteAllPosixTimersLocked()
    {
        foreach (var timer in posixTimers.Values)
        {
            if (timer is not null)
            {
                DeleteLocked(timer);
            }
        }

        posixTimers.Clear();
    }

    /// <summary>What timer_gettime reports (Linux's common_timer_get and posix_cpu_timer_get).</summary>
    private TimerSetting SettingLocked(PosixTimer timer)
    {
        long interval = timer.Interval;
        if (timer.IsCpuTimer)
        {
            if (timer.Expires == 0)
            {
                return new TimerSetting(0, interval);
            }

            long clock = CpuClockNowLocked(timer);
            if (interval != 0 && timer.Status != PosixTimerStatus.Armed)
            {
                BumpCpuTimer(timer, clock);
            }

            return new TimerSetting(clock < timer.Expires ? timer.Expires - clock : timer.SigevNone ? 0 : 1, interval);
        }

        if (interval == 0 && timer.Status == PosixTimerStatus.Disarmed && !timer.SigevNone)
        {
            return default;
        }

        if (timer.Expires == 0)
        {
            return new TimerSetting(0, interval);
        }

        long now = Kernel.Now;
        if (interval != 0 && timer.Status != PosixTimerStatus.Armed)
        {
            // A periodic timer whose signal waits (or a SIGEV_NONE one) reads as if it had been re-armed now.
            timer.Expires = Forward(timer.Expires, now, interval, out long periods);
            timer.Overrun += periods;
        }

        long left = timer.Expires - now;
        return new TimerSetting(left > 0 ? left : timer.SigevNone ? 0 : 1, interval);
    }

    /// <summary>A wall-clock timer's deadline passed.</summary>
    internal void PosixTimerExpired(PosixTimer timer, long now)
    {
        lock (gate)
        {
            if (stopped || !timer.Valid || timer.IsCpuTimer || timer.Status != PosixTimerStatus.Armed || timer.Expires > now)
            {
                return;
            }

            QueueTimerSignalLocked(timer);
        }
    }

    private void CheckCpuPosixTimersLocked(CpuTimes sample)
    {
        foreach (var timer in posixTimers.Values)
        {
            if (timer is { IsCpuTimer: true, Valid: true, Status: PosixTimerStatus.Armed } && timer.Expires != 0 &&
                CpuClockNowLocked(timer, sample) >= timer.Expires)
            {
                FireCpuTimerLocked(timer);
            }
        }
    }

    private void ConsiderCpuPosixTimersLocked(CpuTimes sample, int parallel, ref long wait)
    {
        foreach (var timer in posixTimers.Values)
        {
            if (timer is { IsCpuTimer: true, Valid: true, Status: PosixTimerStatus.Armed } && timer.Expires != 0)
            {
                long left = Math.Max(0, timer.Expires - CpuClockNowLocked(timer, sample));
                wait = Math.Min(wait, timer.CpuTarget is KernelTask ? left : left / parallel);
            }
        }
    }

    private void FireCpuTimerLocked(PosixTimer timer)
    {
        QueueTimerSignalLocked(timer);
        if (timer.Interval == 0)
        {
            timer.Expires = 0;
        }
    }

    private long CpuClockNowLocked(PosixTimer timer) => CpuClockNowLocked(timer, default, sampled: false);

    private long CpuClockNowLocked(PosixTimer timer, CpuTimes sample, bool sampled = true)
    {
        var clock = timer.CpuClock!.Value;
        return timer.CpuTarget is KernelTask task ? clock.Read(task.CpuTime) : clock.Read(sampled ? sample : SampleLocked());
    }

    /// <summary>Linux's bump_cpu_timer: whole intervals up to past <paramref name="now"/>, each an overrun.</summary>
    private static void BumpCpuTimer(PosixTimer timer, long now)
    {
        if (timer.Interval == 0 || now < timer.Expires)
        {
            return;
        }

        long periods = (now - timer.Expires) / timer.Interval + 1;
        timer.Expires = SaturatingAdd(timer.Expires, periods * timer.Interval);
        timer.Overrun += periods;
    }

    /// <summary>The timer expired: send its signal (Linux's posix_timer_queue_signal and posixtimer_send_sigqueue).</summary>
    private void QueueTimerSignalLocked(PosixTimer timer)
    {
        timer.Status = timer.Interval != 0 ? PosixTimerStatus.RequeuePending : PosixTimerStatus.Disarmed;
        timer.SigqueueSeq = timer.SignalSeq;
        timer.SignalPeriodic = timer.Status == PosixTimerStatus.RequeuePending;
        var target = TargetOf(timer);
        if (target is null)
        {
            return; // the SIGEV_THREAD_ID thread is gone
        }

        bool ignored = group.Exiting ||
                       ((target.SignalMask & Signals.Bit(timer.Signal)) == 0 && group.Ignores(timer.Signal));
        if (ignored)
        {
            if (timer.Queued)
            {
                return;
            }

            // A periodic timer waits for the signal to be wanted again; a one-shot's signal is simply lost.
            timer.Parked = timer.SignalPeriodic;
            return;
        }

        if (timer.Queued)
        {
            return; // the queued instance stands for this expiry too
        }

        timer.Parked = false;
        EnqueueLocked(timer, target);
    }

    private KernelTask? TargetOf(PosixTimer timer)
    {
        var pids = group.Kernel.Pids;
        if (timer.TargetThread is { } thread)
        {
            return pids.FindTask(thread.Tid) == thread ? thread : null;
        }

        if (group.Leader is { } leader && pids.FindTask(leader.Tid) == leader)
        {
            return leader;
        }

        var tasks = group.Tasks;
        return tasks.Length > 0 ? tasks[0] : null;
    }

    private void EnqueueLocked(PosixTimer timer, KernelTask target)
    {
        var info = new SignalInfo
        {
            Signo = timer.Signal,
            Code = Signals.SI_TIMER,
            TimerId = timer.Id,
            Value = timer.Value,
            TimerToken = timer.UniqueId,
        };
        timer.Queued = true;
        if (timer.TargetThread is not null)
        {
            target.Pending.EnqueueUnmerged(info);
            target.Wake();
            return;
        }

        group.SharedPending.EnqueueUnmerged(info);
        WakeFor(group, timer.Signal);
    }

    /// <summary>Wakes a thread of <paramref name="process"/> that does not block <paramref name="signal"/> (or all when every one does).</summary>
    internal static void WakeFor(ThreadGroup process, int signal)
    {
        ulong bit = Signals.Bit(signal);
        var tasks = process.Tasks;
        foreach (var task in tasks)
        {
            if ((task.SignalMask & bit) == 0)
            {
                task.Wake();
                return;
            }
        }

        foreach (var task in tasks)
        {
            task.Wake();
        }
    }

    /// <summary>
    /// A POSIX timer's signal was dequeued (delivery or sigtimedwait). False when it is stale (the
    /// timer was deleted or set again since) and must be dropped. A periodic timer starts its next
    /// period now, and <paramref name="info"/> gets the overrun.
    /// </summary>
    public bool TimerSignalDequeued(ref SignalInfo info)
    {
        bool cpu;
        lock (gate)
        {
            if (!posixTimers.TryGetValue(info.TimerId, out var timer) || timer is null || timer.UniqueId != info.TimerToken)
            {
                return false;
            }

            timer.Queued = false;
            if (!timer.Valid || timer.SignalSeq != timer.SigqueueSeq)
            {
                return false;
            }

            if (timer.Interval == 0 || timer.Status != PosixTimerStatus.RequeuePending)
            {
                return true;
            }

            cpu = timer.IsCpuTimer;
            if (cpu)
            {
                BumpCpuTimer(timer, CpuClockNowLocked(timer));
            }
            else
            {
                timer.Expires = Forward(timer.Expires, Kernel.Now, timer.Interval, out long periods);
                timer.Overrun += periods;
                if (!stopped)
                {
                    Service.Schedule(timer, timer.Expires);
                }
            }

            timer.Status = PosixTimerStatus.Armed;
            timer.OverrunLast = timer.Overrun;
            timer.Overrun = -1;
            timer.SignalSeq++;
            info.Overrun = ClampOverrun(timer.OverrunLast);
        }

        if (cpu)
        {
            UpdateCpuWatch();
        }

        return true;
    }

    /// <summary>
    /// After sigaction changed <paramref name="signal"/>'s disposition: if it is ignored now, its
    /// queued timer signals were discarded and periodic timers park; if it was SIG_IGN and is not
    /// ignored any more, parked timers queue their signal at once (Linux's posixtimer_sig_unignore).
    /// </summary>
    public void SignalActionChanged(int signal, bool wasIgnored)
    {
        lock (gate)
        {
            bool ignored = group.Ignores(signal);
            foreach (var timer in posixTimers.Values)
            {
                if (timer is null || timer.Signal != signal || timer.SigevNone)
                {
                    continue;
                }

                if (ignored)
                {
                    if (timer.Queued)
                    {
                        timer.Queued = false;
                        timer.Parked = timer.Valid && timer.SignalPeriodic;
                    }
                }
                else if (wasIgnored && timer.Parked)
                {
                    timer.Parked = false;
                    if (TargetOf(timer) is { } target)
                    {
                        EnqueueLocked(timer, target);
                    }
                }
            }
        }
    }

    private static int ClampOverrun(long overrun) => overrun > int.MaxValue ? int.MaxValue : (int)Math.Max(overrun, 0);
}
