using AppKernel.Sentry.Abi;

namespace AppKernel.Sentry.Kernel;

/// <summary>
/// Pending signals: a bit per signal, with the siginfo of each. Standard signals are not
/// queued (a second one while pending is merged); real-time signals queue every instance.
/// </summary>
internal sealed class SignalQueue
{
    private readonly List<SignalInfo> queue = new();
    private readonly AppKernel.Vfs.WaitQueue? waiters;
    private ulong pending;

    /// <param name="waiters">Told whenever a signal is queued (signalfd readiness); null for none.</param>
    public SignalQueue(AppKernel.Vfs.WaitQueue? waiters = null) => this.waiters = waiters;

    public ulong Pending => Volatile.Read(ref pending);

    /// <summary>Adds a signal; false when a standard signal was already pending (merged).</summary>
    public bool Enqueue(in SignalInfo info)
    {
        lock (queue)
        {
            ulong bit = Signals.Bit(info.Signo);
            if (info.Signo < Signals.SIGRTMIN && (pending & bit) != 0)
            {
                return false;
            }

            queue.Add(info);
            pending |= bit;
        }

        // Outside the lock: a listener (a signalfd's epoll item) may take its own locks.
        waiters?.Notify(AppKernel.Vfs.PollEvents.In | AppKernel.Vfs.PollEvents.ReadNormal);
        return true;
    }

    /// <summary>Instances queued (siginfo entries), for RLIMIT_SIGPENDING accounting.</summary>
    public int Count
    {
        get
        {
            lock (queue)
            {
                return queue.Count;
            }
        }
    }

    /// <summary>Queues a POSIX timer's signal: it never merges with a pending instance, standard signal or not (its timer counts overruns instead).</summary>
    public void EnqueueUnmerged(in SignalInfo info)
    {
        lock (queue)
        {
            queue.Add(info);
            pending |= Signals.Bit(info.Signo);
        }
    }

    /// <summary>Drops every SI_TIMER instance (execve); a signal stays pending while another instance of it is queued.</summary>
    public void RemoveTimerSignals()
    {
        lock (queue)
        {
            if (queue.RemoveAll(i => i.Code == Signals.SI_TIMER) == 0)
            {
                return;
            }

            ulong remaining = 0;
            foreach (var info in queue)
            {
                remaining |= Signals.Bit(info.Signo);
            }

            pending = remaining;
        }
    }

    /// <summary>Takes the best signal not in <paramref name="blocked"/>: synchronous faults first, then the lowest number.</summary>
    public bool TryDequeue(ulong blocked, out SignalInfo info)
    {
        lock (queue)
        {
            ulong ready = pending & ~blocked;
            if (ready == 0)
            {
                info = default;
                return false;
            }

            const ulong synchronous = (1UL << (Signals.SIGSEGV - 1)) | (1UL << (Signals.SIGBUS - 1)) |
                                      (1UL << (Signals.SIGILL - 1)) | (1UL << (Signals.SIGTRAP - 1)) |
                                      (1UL << (Signals.SIGFPE - 1)) | (1UL << (Signals.SIGSYS - 1));
            ulong choice = (ready & synchronous) != 0 ? ready & synchronous : ready;
            int signal = System.Numerics.BitOperations.TrailingZeroCount(choice) + 1;
            int index = queue.FindIndex(i => i.Signo == signal);
            info = queue[index];
            queue.RemoveAt(index);
            if (!queue.Exists(i => i.Signo == signal))
            {
                pending &= ~Signals.Bit(signal);
            }

            return true;
        }
    }

    /// <summary>Removes every pending instance of the signals in <paramref name="mask"/> (a signal set to SIG_IGN, SIGCONT vs stop signals).</summary>
    public void Discard(ulong mask)
    {
        lock (queue)
        {
            queue.RemoveAll(i => (Signals.Bit(i.Signo) & mask) != 0);
            pending &= ~mask;
        }
    }
}
