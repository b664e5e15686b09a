using System.Runtime.ExceptionServices;

namespace AppKernel.Platform.Ptrace;

/// <summary>
/// The platform's own host thread. It spawns every stub process (so PR_SET_PDEATHSIG, which fires
/// when the spawning *thread* ends, ties stubs to the platform's life, not to a task thread), traces
/// each stub's leader thread, and runs the injections that need a stopped thread no Sentry thread
/// traces: creating stub threads, and Map/Unmap/Protect from threads that trace none.
/// </summary>
internal sealed class ControlThread : IDisposable
{
    private readonly Thread thread;
    private readonly Queue<WorkItem> queue = new();
    private bool stopping;

    public ControlThread()
    {
        thread = new Thread(Run, 256 * 1024) { IsBackground = true, Name = "ptrace platform control" };
        thread.Start();
    }

    /// <summary>True when called on the control thread.</summary>
    public bool IsCurrent => Thread.CurrentThread == thread;

    /// <summary>Runs <paramref name="work"/> on the control thread and waits for it; its exception is rethrown here.</summary>
    public void Invoke(Action work)
    {
        if (IsCurrent)
        {
            work();
            return;
        }

        var item = new WorkItem(work);
        lock (queue)
        {
            ObjectDisposedException.ThrowIf(stopping, this);
            queue.Enqueue(item);
            Monitor.Pulse(queue);
        }

        item.Done.Wait();
        item.Done.Dispose();
        item.Error?.Throw();
    }

    /// <summary>Runs <paramref name="work"/> on the control thread and returns its result.</summary>
    public T Invoke<T>(Func<T> work)
    {
        T result = default!;
        Invoke(() => { result = work(); });
        return result;
    }

    public void Dispose()
    {
        lock (queue)
        {
            stopping = true;
            Monitor.Pulse(queue);
        }

        if (!IsCurrent)
        {
            thread.Join();
        }
    }

    private void Run()
    {
        while (true)
        {
            WorkItem item;
            lock (queue)
            {
                while (queue.Count == 0)
                {
                    if (stopping)
                    {
                        return;
                    }

                    Monitor.Wait(queue);
                }

                item = queue.Dequeue();
            }

            try
            {
                item.Work();
            }
            catch (Exception e)
            {
                item.Error = ExceptionDispatchInfo.Capture(e);
            }

            item.Done.Set();
        }
    }

    private sealed class WorkItem(Action work)
    {
        public Action Work { get; } = work;

        public ManualResetEventSlim Done { get; } = new();

        public ExceptionDispatchInfo? Error { get; set; }
    }
}
