namespace AppKernel.Sentry.Kernel;

/// <summary>The sandbox's own PID namespace: ids start at 1, and host pids are never visible.</summary>
internal sealed class PidNamespace
{
    public const int PidMax = 4194304;

    private readonly object gate = new();
    private readonly Dictionary<int, KernelTask> tasks = new();
    private readonly Dictionary<int, ThreadGroup> groups = new();
    private int last;

    public object Gate => gate;

    /// <summary>Allocates the next free id (Linux allocates upward and wraps at pid_max).</summary>
    public int Allocate(int maxTasks)
    {
        lock (gate)
        {
            if (tasks.Count >= maxTasks)
            {
                throw ErrnoException.Of(Errno.EAGAIN);
            }

            for (int tries = 0; tries < PidMax; tries++)
            {
                last = last >= PidMax - 1 ? 1 : last + 1;
                if (!tasks.ContainsKey(last) && !groups.ContainsKey(last))
                {
                    return last;
                }
            }

            throw ErrnoException.Of(Errno.EAGAIN);
        }
    }

    public void AddTask(KernelTask task)
    {
        lock (gate)
        {
            tasks[task.Tid] = task;
        }
    }

    public void RemoveTask(KernelTask task)
    {
        lock (gate)
        {
            tasks.Remove(task.Tid);
        }
    }

    public void AddGroup(ThreadGroup group)
    {
        lock (gate)
        {
            groups[group.Pid] = group;
        }
    }

    public void RemoveGroup(ThreadGroup group)
    {
        lock (gate)
        {
            groups.Remove(group.Pid);
        }
    }

    public KernelTask? FindTask(int tid)
    {
        lock (gate)
        {
            return tasks.GetValueOrDefault(tid);
        }
    }

    public ThreadGroup? FindGroup(int pid)
    {
        lock (gate)
        {
            return groups.GetValueOrDefault(pid);
        }
    }

    public ThreadGroup[] Groups()
    {
        lock (gate)
        {
            return [.. groups.Values.OrderBy(g => g.Pid)];
        }
    }

    public KernelTask[] Tasks()
    {
        lock (gate)
        {
            return [.. tasks.Values];
        }
    }

    public int TaskCount
    {
        get
        {
            lock (gate)
            {
                return tasks.Count;
            }
        }
    }
}
