namespace AppKernel.Sentry.Kernel;

/// <summary>
/// The host threads that run tasks, kept for a while after their task ends so that the next clone
/// takes one instead of starting a thread. Starting a .NET thread costs the cloning task about
/// 0.2 ms here (the runtime's thread setup, a 1 MiB stack, and waiting until the thread runs), and
/// the child as much again before it runs; a shell starts a task for every command.
/// </summary>
/// <remarks>
/// A thread runs one task at a time, from the task's first instruction to its exit. What a task
/// leaves on its thread is reset by the task itself (<see cref="KernelTask"/>'s thread-static
/// current task, its CPU-clock baseline); what platforms keep per host thread (the ptrace tracer's
/// CPU pin) is valid for whichever task runs there next. Idle threads end after
/// <see cref="IdleLifetime"/>, and at once when the kernel is disposed.
/// </remarks>
internal sealed class TaskThreadPool : IDisposable
{
    /// <summary>At most this many threads wait for work; more end when their task does.</summary>
    private const int MaxIdle = 16;

    /// <summary>The stack of a task thread: the Sentry's syscall paths, never the program's.</summary>
    private const int StackSize = 1 << 20;

    private static readonly TimeSpan IdleLifetime = TimeSpan.FromSeconds(10);

    private readonly object gate = new();
    private readonly Stack<Worker> idle = new();
    private bool disposed;

    /// <summary>Runs <paramref name="work"/> on an idle task thread, or on a new one, named <paramref name="name"/>.</summary>
    public void Run(string name, Action work)
    {
        Worker? worker = null;
        lock (gate)
        {
            if (idle.Count > 0)
            {
                worker = idle.Pop();
            }
        }

        if (worker is null)
        {
            worker = new Worker(this);
            worker.Assign(name, work);
            worker.Start();
        }
        else
        {
            worker.Assign(name, work);
            worker.Wake();
        }
    }

    /// <summary>Ends the idle threads; threads still running a task end after it.</summary>
    public void Dispose()
    {
        Worker[] waiting;
        lock (gate)
        {
            disposed = true;
            waiting = [.. idle];
            idle.Clear();
        }

        foreach (var worker in waiting)
        {
            worker.Wake();
        }
    }

    /// <summary>A thread whose task ended offers itself; false: it should end.</summary>
    private bool ReturnIdle(Worker worker)
    {
        lock (gate)
        {
            if (disposed || idle.Count >= MaxIdle)
            {
                return false;
            }

            idle.Push(worker);
            return true;
        }
    }

    /// <summary>An idle thread that waited long enough leaves the pool; false: it was taken meanwhile and has work coming.</summary>
    private bool Retire(Worker worker)
    {
        lock (gate)
        {
            if (!idle.Contains(worker))
            {
                return false;
            }

            var kept = idle.Where(w => w != worker).Reverse().ToArray();
            idle.Clear();
            foreach (var w in kept)
            {
                idle.Push(w);
            }

            return true;
        }
    }

    private sealed class Worker(TaskThreadPool pool)
    {
        private readonly ManualResetEventSlim wake = new(false);
        private Thread? thread;
        private Action? work;
        private string name = "";

        public void Assign(string threadName, Action task)
        {
            name = threadName;
            Volatile.Write(ref work, task);
        }

        public void Start()
        {
            thread = new Thread(Loop, StackSize) { IsBackground = true, Name = name };
            thread.Start();
        }

        public void Wake() => wake.Set();

        private void Loop()
        {
            while (true)
            {
                var task = Interlocked.Exchange(ref work, null);
                if (task is null)
                {
                    return; // woken without work: the pool was disposed
                }

                if (thread!.Name != name)
                {
                    thread.Name = name;
                }

                task();
                if (!pool.ReturnIdle(this))
                {
                    return;
                }

                // Wait for the next task; an idle thread that nobody takes ends.
                if (!wake.Wait(IdleLifetime) && pool.Retire(this))
                {
                    return;
                }

                wake.Wait();
                wake.Reset();
            }
        }
    }
}
