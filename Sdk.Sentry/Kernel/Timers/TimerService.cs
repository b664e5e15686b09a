using AppKernel.Sentry.Native;
using Microsoft.Extensions.Logging;

namespace AppKernel.Sentry.Kernel.Timers;

/// <summary>
/// The kernel's timer thread: fires <see cref="KernelTimer"/>s at their deadlines (CLOCK_MONOTONIC
/// nanoseconds, <see cref="Kernel.Now"/>) without a host thread per timer. Deadlines live in a
/// binary heap; the thread sleeps in <c>read</c> on one host timerfd armed (absolute) at the
/// earliest deadline, so firing is as precise as the host's high-resolution timers. Scheduling an
/// earlier deadline re-arms the timerfd from the scheduling thread. The thread starts with the
/// first timer, so a sandbox that never uses timers never has it.
/// </summary>
internal sealed unsafe class TimerService : IDisposable
{
    private readonly object gate = new();
    private readonly Kernel kernel;
    private readonly List<KernelTimer> due = new();
    private KernelTimer[] heap = new KernelTimer[16];
    private int count;
    private int timerfd = -1;
    private Thread? thread;
    private long armed = long.MaxValue;
    private volatile bool disposed;

    public TimerService(Kernel kernel)
    {
        this.kernel = kernel;
    }

    /// <summary>Fires <paramref name="timer"/> at <paramref name="deadline"/> (moving it if it was scheduled).</summary>
    public void Schedule(KernelTimer timer, long deadline)
    {
        deadline = Math.Max(deadline, 1);
        lock (gate)
        {
            if (disposed)
            {
                return;
            }

            EnsureStarted();
            if (timer.HeapIndex >= 0)
            {
                long old = timer.ScheduledDeadline;
                timer.ScheduledDeadline = deadline;
                if (deadline < old)
                {
                    SiftUp(timer.HeapIndex);
                }
                else
                {
                    SiftDown(timer.HeapIndex);
                }
            }
            else
            {
                if (count == heap.Length)
                {
                    Array.Resize(ref heap, count * 2);
                }

                timer.ScheduledDeadline = deadline;
                timer.HeapIndex = count;
                heap[count++] = timer;
                SiftUp(count - 1);
            }

            if (deadline < armed)
            {
                Arm(deadline);
            }
        }
    }

    /// <summary>Takes <paramref name="timer"/> off the schedule. An <see cref="KernelTimer.Expire"/> already under way still runs.</summary>
    public void Cancel(KernelTimer timer)
    {
        lock (gate)
        {
            if (timer.HeapIndex >= 0)
            {
                RemoveAt(timer.HeapIndex);
            }
        }
    }

    /// <summary>Timers waiting to fire (for tests and diagnostics).</summary>
    public int Count
    {
        get
        {
            lock (gate)
            {
                return count;
            }
        }
    }

    public void Dispose()
    {
        Thread? running;
        lock (gate)
        {
            if (disposed)
            {
                return;
            }

            disposed = true;
            running = thread;
            while (count > 0)
            {
                RemoveAt(count - 1);
            }

            if (timerfd >= 0)
            {
                Arm(1); // long past: the thread's read returns and it sees the flag
            }
        }

        if (running is not null && running != Thread.CurrentThread)
        {
            running.Join(TimeSpan.FromSeconds(5));
        }

        lock (gate)
        {
            if (timerfd >= 0 && (running is null || !running.IsAlive))
            {
                LibC.Close(timerfd);
                timerfd = -1;
            }
        }
    }

    private void EnsureStarted()
    {
        if (thread is not null)
        {
            return;
        }

        timerfd = LibC.TimerfdCreate(LibC.CLOCK_MONOTONIC, LibC.TFD_CLOEXEC);
        if (timerfd < 0)
        {
            throw LibC.HostError("timerfd_create");
        }

        thread = new Thread(Run, 256 << 10) { IsBackground = true, Name = $"appkernel timers {kernel.Id}" };
        thread.Start();
    }

    /// <summary>Arms the timerfd at <paramref name="deadline"/> (absolute), or disarms it for <see cref="long.MaxValue"/>.</summary>
    private void Arm(long deadline)
    {
        armed = deadline;
        var spec = default(LibC.HostItimerspec);
        if (deadline != long.MaxValue)
        {
            spec.ValueSeconds = deadline / 1_000_000_000;
            spec.ValueNanoseconds = deadline % 1_000_000_000;
        }

        LibC.TimerfdSettime(timerfd, LibC.TFD_TIMER_ABSTIME, &spec, null);
    }

    private void Run()
    {
        ulong expirations;
        while (true)
        {
            nint n = LibC.Read(timerfd, (byte*)&expirations, 8);
            if (disposed)
            {
                return;
            }

            if (n < 0 && LibC.Errno == LibC.EINTR)
            {
                continue;
            }

            long now = Kernel.Now;
            lock (gate)
            {
                while (count > 0 && heap[0].ScheduledDeadline <= now)
                {
                    due.Add(heap[0]);
                    RemoveAt(0);
                }

                Arm(count > 0 ? heap[0].ScheduledDeadline : long.MaxValue);
            }

            foreach (var timer in due)
            {
                try
                {
                    timer.Expire(now);
                }
                catch (Exception e)
                {
                    // A bug in a timer's owner: the sandbox goes down, never the host.
                    kernel.Log.LogError(e, "sandbox {Id}: internal error in a timer: {Message}", kernel.Id, e.Message);
                    kernel.KillAll();
                }
            }

            due.Clear();
        }
    }

    private void RemoveAt(int index)
    {
        var removed = heap[index];
        removed.HeapIndex = -1;
        count--;
        if (index == count)
        {
            heap[count] = null!;
            return;
        }

        heap[index] = heap[count];
        heap[index].HeapIndex = index;
        heap[count] = null!;
        SiftDown(index);
        SiftUp(index);
    }

    private void SiftUp(int index)
    {
        var item = heap[index];
        while (index > 0)
        {
            int parent = (index - 1) / 2;
            if (heap[parent].ScheduledDeadline <= item.ScheduledDeadline)
            {
                break;
            }

            heap[index] = heap[parent];
            heap[index].HeapIndex = index;
            index = parent;
        }

        heap[index] = item;
        item.HeapIndex = index;
    }

    private void SiftDown(int index)
    {
        var item = heap[index];
        while (true)
        {
            int child = index * 2 + 1;
            if (child >= count)
            {
                break;
            }

            if (child + 1 < count && heap[child + 1].ScheduledDeadline < heap[child].ScheduledDeadline)
            {
                child++;
            }

            if (heap[child].ScheduledDeadline >= item.ScheduledDeadline)
            {
                break;
            }

            heap[index] = heap[child];
            heap[index].HeapIndex = index;
            index = child;
        }

        heap[index] = item;
        item.HeapIndex = index;
    }
}
