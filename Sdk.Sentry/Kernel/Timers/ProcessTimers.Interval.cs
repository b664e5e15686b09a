using AppKernel.Sentry.Abi;

namespace AppKernel.Sentry.Kernel.Timers;

// The interval timers of setitimer(2), getitimer(2) and alarm(2), with Linux's rules:
// - ITIMER_REAL counts wall-clock time and raises SIGALRM (SI_KERNEL). It does not reload when it
//   fires: dequeuing a SIGALRM (handler, sigtimedwait) re-arms it at the next multiple of the
//   interval past now, so a blocked or ignored SIGALRM stops a periodic timer and no overruns pile up.
// - ITIMER_VIRTUAL (user CPU time, SIGVTALRM) and ITIMER_PROF (user+system, SIGPROF) reload when
//   they fire. A value set is lengthened by one tick, and an expired timer that has not fired yet
//   reads as one tick left.
internal sealed partial class ProcessTimers
{
    private readonly RealTimer real;
    private long realDeadline;
    private long realInterval;
    private bool realActive;
    private long virtualExpires, virtualInterval, profExpires, profInterval;

    /// <summary>An interval timer's setting in nanoseconds (what itimerval holds).</summary>
    public readonly record struct IntervalSetting(long Value, long Interval);

    /// <summary>getitimer: the time left and the interval of timer <paramref name="which"/> (ITIMER_*).</summary>
    public IntervalSetting GetInterval(int which)
    {
        lock (gate)
        {
            return which == TimerConstants.ITIMER_REAL ? RealSettingLocked(Kernel.Now) : CpuSettingLocked(which, SampleLocked());
        }
    }

    /// <summary>setitimer: sets timer <paramref name="which"/> and returns its previous setting. Zero value disarms.</summary>
    public IntervalSetting SetInterval(int which, IntervalSetting setting)
    {
        IntervalSetting old;
        lock (gate)
        {
            long now = Kernel.Now;
            if (which == TimerConstants.ITIMER_REAL)
            {
                old = RealSettingLocked(now);
                Service.Cancel(real);
                if (setting.Value != 0 && !stopped)
                {
                    realInterval = setting.Interval;
                    realDeadline = SaturatingAdd(now, setting.Value);
                    realActive = true;
                    Service.Schedule(real, realDeadline);
                }
                else
                {
                    realInterval = 0;
                    realActive = false;
                }

                return old;
            }

            var sample = SampleLocked();
            long clock = which == TimerConstants.ITIMER_VIRTUAL ? sample.User : sample.Total;
            ref long expires = ref which == TimerConstants.ITIMER_VIRTUAL ? ref virtualExpires : ref profExpires;
            ref long interval = ref which == TimerConstants.ITIMER_VIRTUAL ? ref virtualInterval : ref profInterval;
            long oldValue = expires, next = setting.Value;
            if (oldValue != 0)
            {
                oldValue = oldValue <= clock ? TimerConstants.TickNanoseconds : oldValue - clock;
            }

            if (next != 0)
            {
                next = SaturatingAdd(SaturatingAdd(next, TimerConstants.TickNanoseconds), clock);
            }

            old = new IntervalSetting(oldValue, interval);
            expires = next;
            interval = setting.Interval;
            if (!stopped)
            {
                ScheduleWatchLocked(now, sample, RlimitCpu());
            }
        }

        return old;
    }

    private IntervalSetting RealSettingLocked(long now)
    {
        if (!realActive)
        {
            return new IntervalSetting(0, realInterval);
        }

        long left = realDeadline - now;
        return new IntervalSetting(left <= 0 ? 1000 : left, realInterval);
    }

    private IntervalSetting CpuSettingLocked(int which, CpuTimes sample)
    {
        long expires = which == TimerConstants.ITIMER_VIRTUAL ? virtualExpires : profExpires;
        long interval = which == TimerConstants.ITIMER_VIRTUAL ? virtualInterval : profInterval;
        if (expires != 0)
        {
            long clock = which == TimerConstants.ITIMER_VIRTUAL ? sample.User : sample.Total;
            expires = expires < clock ? TimerConstants.TickNanoseconds : expires - clock;
        }

        return new IntervalSetting(expires, interval);
    }

    /// <summary>A CPU itimer reached its expiry: reload or stop; true when its signal is due.</summary>
    private static bool CheckCpuItimer(ref long expires, long interval, long clock)
    {
        if (expires == 0 || clock < expires)
        {
            return false;
        }

        expires = interval != 0 ? SaturatingAdd(expires, interval) : 0;
        return true;
    }

    private void RealExpired(long now)
    {
        lock (gate)
        {
            if (stopped || !realActive || realDeadline > now)
            {
                return; // cancelled or moved since
            }

            realActive = false;
        }

        SendKernelSignal(Signals.SIGALRM);
    }

    /// <summary>A SIGALRM was taken off the process's queue: a periodic ITIMER_REAL that fired starts its next period.</summary>
    public void SigalrmDequeued()
    {
        lock (gate)
        {
            if (stopped || realActive || realInterval == 0)
            {
                return;
            }

            realDeadline = Forward(realDeadline, Kernel.Now, realInterval, out _);
            realActive = true;
            Service.Schedule(real, realDeadline);
        }
    }

    /// <summary>
    /// Linux's hrtimer_forward: moves <paramref name="expires"/> by whole intervals to the first
    /// point after <paramref name="now"/>; <paramref name="periods"/> is how many were added (0 when
    /// it was still ahead).
    /// </summary>
    internal static long Forward(long expires, long now, long interval, out long periods)
    {
        periods = 0;
        if (now < expires)
        {
            return expires;
        }

        long delta = now - expires;
        if (delta >= interval)
        {
            periods = delta / interval;
            expires = SaturatingAdd(expires, periods * interval);
            if (expires > now)
            {
                return expires;
            }
        }

        periods++;
        return SaturatingAdd(expires, interval);
    }

    internal static long SaturatingAdd(long a, long b)
    {
        long sum = unchecked(a + b);
        return ((a ^ sum) & (b ^ sum)) < 0 ? long.MaxValue : sum;
    }

    /// <summary>Fires ITIMER_REAL.</summary>
    private sealed class RealTimer(ProcessTimers owner) : KernelTimer
    {
        public override void Expire(long now) => owner.RealExpired(now);
    }
}
