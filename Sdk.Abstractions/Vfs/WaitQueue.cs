namespace AppKernel.Vfs;

/// <summary>Receives readiness notifications from a <see cref="WaitQueue"/>.</summary>
public interface IEventListener
{
    /// <summary>Called, on the notifying thread, when some of the events the listener asked for occur. Must not block.</summary>
    void OnEvents(PollEvents events);
}

/// <summary>
/// The listeners waiting for readiness changes of one object (a pipe, a socket, a tty):
/// blocked readers, poll, select and epoll all register here. Thread-safe.
/// </summary>
public sealed class WaitQueue
{
    private readonly object gate = new();
    private (IEventListener Listener, PollEvents Mask)[] entries = [];

    /// <summary>
    /// Adds <paramref name="listener"/> for the events in <paramref name="mask"/>. The newest
    /// listener hears first, as Linux's add_wait_queue puts entries at the head (two epoll items
    /// on one file reach the ready list in that order).
    /// </summary>
    public void Register(IEventListener listener, PollEvents mask)
    {
        lock (gate)
        {
            var next = new (IEventListener, PollEvents)[entries.Length + 1];
            entries.CopyTo(next, 1);
            next[0] = (listener, mask);
            entries = next;
        }
    }

    /// <summary>Removes every registration of <paramref name="listener"/>.</summary>
    public void Unregister(IEventListener listener)
    {
        lock (gate)
        {
            int count = 0;
            foreach (var entry in entries)
            {
                if (!ReferenceEquals(entry.Listener, listener))
                {
                    count++;
                }
            }

            if (count == entries.Length)
            {
                return;
            }

            var next = new (IEventListener, PollEvents)[count];
            int i = 0;
            foreach (var entry in entries)
            {
                if (!ReferenceEquals(entry.Listener, listener))
                {
                    next[i++] = entry;
                }
            }

            entries = next;
        }
    }

    /// <summary>Tells the listeners interested in any of <paramref name="events"/>. Error and hang-up always reach everyone.</summary>
    public void Notify(PollEvents events)
    {
        // Copy-on-write array: notification takes no lock and allocates nothing.
        var snapshot = Volatile.Read(ref entries);
        foreach (var (listener, mask) in snapshot)
        {
            var hit = events & (mask | PollEvents.Error | PollEvents.HangUp);
            if (hit != 0)
            {
                listener.OnEvents(hit);
            }
        }
    }

    /// <summary>True when someone is registered.</summary>
    public bool HasListeners => Volatile.Read(ref entries).Length > 0;
}
