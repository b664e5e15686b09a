using AppKernel.Sentry.Vfs;
using AppKernel.Vfs;

namespace AppKernel.Sentry.Kernel.Events;

/// <summary>
/// What poll and select wait on (Linux's poll_table): polling an fd registers the task on the
/// file's <see cref="WaitQueue"/> and keeps a reference to the description until the call ends, so
/// any change wakes the task; an fd closed meanwhile reads as POLLNVAL on the next pass.
/// </summary>
internal sealed class PollTable(KernelTask task) : IDisposable
{
    private readonly List<FileDescription> held = new();
    private readonly Dictionary<WaitQueue, PollEvents> queues = new(ReferenceEqualityComparer.Instance);

    /// <summary>
    /// The readiness of <paramref name="fd"/> among <paramref name="mask"/> (plus error and
    /// hang-up, which the file always reports); POLLNVAL when the fd is not open. An O_PATH fd is
    /// POLLNVAL to poll but always ready to select (<paramref name="pathIsReady"/>), as on Linux.
    /// </summary>
    public PollEvents Poll(int fd, PollEvents mask, bool pathIsReady = false)
    {
        if (!task.Fds.TryGet(fd, out var description))
        {
            return PollEvents.Invalid;
        }

        if (description.IsPathOnly)
        {
            return pathIsReady ? mask & (PollEvents.In | PollEvents.Out | PollEvents.ReadNormal | PollEvents.WriteNormal) : PollEvents.Invalid;
        }

        var operations = description.Operations;
        if (operations.Waiters is { } queue)
        {
            var wanted = mask | PollEvents.Error | PollEvents.HangUp;
            if (!queues.TryGetValue(queue, out var registered))
            {
                held.Add(description.AddReference());
                queue.Register(task, wanted);
                queues[queue] = wanted;
            }
            else if ((wanted & ~registered) != 0)
            {
                // The task may sit on a queue more than once (one entry per mask); one Unregister removes all.
                queue.Register(task, wanted);
                queues[queue] = registered | wanted;
            }
        }

        return operations.Poll(mask);
    }

    public void Dispose()
    {
        foreach (var queue in queues.Keys)
        {
            queue.Unregister(task);
        }

        foreach (var description in held)
        {
            description.Release();
        }

        queues.Clear();
        held.Clear();
    }
}
