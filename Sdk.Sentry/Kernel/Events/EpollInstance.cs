using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using AppKernel.Sentry.Abi;
using AppKernel.Sentry.Vfs;
using AppKernel.Syscalls;
using AppKernel.Vfs;

namespace AppKernel.Sentry.Kernel.Events;

/// <summary>
/// An epoll instance (Linux's struct eventpoll): the interest list keyed by (description, fd), the
/// ready list, and the two queues of waiters: tasks blocked in epoll_wait, and pollers of the
/// epoll fd itself (poll, select, an outer epoll).
/// </summary>
/// <remarks>
/// As on Linux, an item registers a callback on the watched file's <see cref="WaitQueue"/>; a
/// wake-up that matches the item's events puts it on the ready list. epoll_wait re-polls each
/// ready item: a level-triggered item that is still ready goes back on the list after it is
/// reported, an edge-triggered one waits for the next wake-up, a one-shot one is disabled until
/// EPOLL_CTL_MOD. Items hold no reference to the description: the interest list drops them when
/// the description's last reference goes (<see cref="IDescriptionWatcher"/>), so closing one of two
/// dup'ed fds leaves the item in place, exactly like Linux. Locks: <c>gate</c> guards the lists and
/// is never held while calling out (file polls, wake-ups, program memory); <c>scanLock</c>
/// serialises ready-list scans like Linux's ep->mtx.
/// </remarks>
internal sealed class EpollInstance : IFileOperations, IDescriptionWatcher
{
    public const uint EPOLLIN = 0x1, EPOLLPRI = 0x2, EPOLLOUT = 0x4, EPOLLERR = 0x8, EPOLLHUP = 0x10,
        EPOLLRDNORM = 0x40, EPOLLRDBAND = 0x80, EPOLLWRNORM = 0x100, EPOLLWRBAND = 0x200, EPOLLMSG = 0x400,
        EPOLLRDHUP = 0x2000, EPOLLEXCLUSIVE = 1u << 28, EPOLLWAKEUP = 1u << 29, EPOLLONESHOT = 1u << 30, EPOLLET = 1u << 31;

    /// <summary>Bits that steer the item rather than name events (EP_PRIVATE_BITS).</summary>
    public const uint PrivateBits = EPOLLWAKEUP | EPOLLONESHOT | EPOLLET | EPOLLEXCLUSIVE;

    /// <summary>The bits EPOLLEXCLUSIVE may be combined with (EPOLLEXCLUSIVE_OK_BITS).</summary>
    public const uint ExclusiveOkBits = EPOLLIN | EPOLLOUT | EPOLLERR | EPOLLHUP | EPOLLWAKEUP | EPOLLET | EPOLLEXCLUSIVE;

    /// <summary>How deep epoll instances may nest (EP_MAX_NESTS).</summary>
    public const int MaxNests = 4;

    public const int EventSize = 12;

    private static readonly object LoopCheckGate = new();

    private readonly object gate = new();
    private readonly object scanLock = new();
    private readonly Dictionary<(FileDescription File, int Fd), EpollItem> items = new();
    private readonly Dictionary<FileDescription, List<EpollItem>> byFile = new();
    private readonly LinkedList<EpollItem> ready = new();
    private bool released;

    public IInode? Inode => AnonymousInode.Instance;

    /// <summary>The description that holds this instance (set once it is made).</summary>
    public FileDescription? Description { get; set; }

    /// <summary>Pollers of the epoll fd: poll, select, an outer epoll's items.</summary>
    public WaitQueue Waiters { get; } = new();

    WaitQueue? IFileOperations.Waiters => Waiters;

    /// <summary>Tasks blocked in epoll_wait on this instance.</summary>
    public WaitQueue TaskWaiters { get; } = new();

    /// <summary>True when the ready list holds something (it may turn out stale when re-polled).</summary>
    public bool HasReady
    {
        get
        {
            lock (gate)
            {
                return ready.Count > 0;
            }
        }
    }

    /// <summary>The number of items in the interest list.</summary>
    public int Count
    {
        get
        {
            lock (gate)
            {
                return items.Count;
            }
        }
    }

    /// <summary>Readable when an item on the ready list is really ready (ep_eventpoll_poll).</summary>
    public PollEvents Poll(PollEvents mask)
    {
        EpollItem[] candidates;
        lock (gate)
        {
            if (ready.Count == 0)
            {
                return 0;
            }

            candidates = [.. ready];
        }

        foreach (var item in candidates)
        {
            if (PollItem(item) != 0)
            {
                return mask & (PollEvents.In | PollEvents.ReadNormal);
            }
        }

        return 0;
    }

    /// <summary>EPOLL_CTL_ADD. <paramref name="file"/> is held referenced by the caller for the duration.</summary>
    public void Add(FileDescription file, int fd, uint events, ulong data)
    {
        var queue = file.Operations.Waiters ?? throw ErrnoException.Of(Errno.EPERM);
        events = (events & ~EPOLLWAKEUP) | EPOLLERR | EPOLLHUP;
        var item = new EpollItem(this, file, fd, events, data, queue);
        if (file.Operations is EpollInstance target)
        {
            // Loop and depth checks and the insertion happen as one step, so two concurrent
            // additions cannot build a cycle between them.
            lock (LoopCheckGate)
            {
                if (LoopCheck(target))
                {
                    throw ErrnoException.Of(Errno.ELOOP);
                }

                Insert(item);
            }
        }
        else
        {
            Insert(item);
        }

        file.AddWatcher(this);
        if ((events & EPOLLEXCLUSIVE) != 0)
        {
            ExclusiveWakeList.Add(queue, item);
        }
        else
        {
            queue.Register(item, PollEvents.All);
        }

        // Registered first, polled second: a change in between is not lost.
        if (PollItem(item) != 0)
        {
            MakeReady(item);
        }
    }

    private void Insert(EpollItem item)
    {
        lock (gate)
        {
            if (released)
            {
                throw ErrnoException.Of(Errno.EBADF);
            }

            if (items.ContainsKey((item.File, item.Fd)))
            {
                throw ErrnoException.Of(Errno.EEXIST);
            }

            items.Add((item.File, item.Fd), item);
            if (!byFile.TryGetValue(item.File, out var list))
            {
                byFile[item.File] = list = new List<EpollItem>(1);
            }

            list.Add(item);
        }
    }

    /// <summary>EPOLL_CTL_MOD: new events and data; re-arms a disabled one-shot item.</summary>
    public void Modify(FileDescription file, int fd, uint events, ulong data)
    {
        EpollItem? item;
        lock (gate)
        {
            if (!items.TryGetValue((file, fd), out item))
            {
                throw ErrnoException.Of(Errno.ENOENT);
            }

            if ((item.Events & EPOLLEXCLUSIVE) != 0)
            {
                throw ErrnoException.Of(Errno.EINVAL);
            }

            item.Events = (events & ~EPOLLWAKEUP) | EPOLLERR | EPOLLHUP;
            item.Data = data;
        }

        if (PollItem(item) != 0)
        {
            MakeReady(item);
        }
    }

    /// <summary>EPOLL_CTL_DEL.</summary>
    public void Delete(FileDescription file, int fd)
    {
        EpollItem? item;
        bool lastForFile;
        lock (gate)
        {
            if (!items.Remove((file, fd), out item))
            {
                throw ErrnoException.Of(Errno.ENOENT);
            }

            lastForFile = Unlink(item);
        }

        Unregister(item);
        if (lastForFile)
        {
            file.RemoveWatcher(this);
        }
    }

    /// <summary>A watched description's last reference went: its items leave the interest list.</summary>
    public void DescriptionReleased(FileDescription description)
    {
        List<EpollItem>? gone;
        lock (gate)
        {
            if (!byFile.Remove(description, out gone))
            {
                return;
            }

            foreach (var item in gone)
            {
                items.Remove((item.File, item.Fd));
                item.Removed = true;
                if (item.ReadyNode.List is not null)
                {
                    ready.Remove(item.ReadyNode);
                }
            }
        }

        foreach (var item in gone)
        {
            Unregister(item);
        }
    }

    /// <summary>Removes <paramref name="item"/> from the lists; true when it was the file's last. Under the gate.</summary>
    private bool Unlink(EpollItem item)
    {
        item.Removed = true;
        if (item.ReadyNode.List is not null)
        {
            ready.Remove(item.ReadyNode);
        }

        var list = byFile[item.File];
        list.Remove(item);
        if (list.Count == 0)
        {
            byFile.Remove(item.File);
            return true;
        }

        return false;
    }

    private static void Unregister(EpollItem item)
    {
        if ((item.Events & EPOLLEXCLUSIVE) != 0)
        {
            ExclusiveWakeList.Remove(item.Queue, item);
        }
        else
        {
            item.Queue.Unregister(item);
        }
    }

    /// <summary>The item's events that its file reports now (ep_item_poll).</summary>
    private static uint PollItem(EpollItem item)
    {
        uint wanted = item.Events & ~PrivateBits;
        if (wanted == 0 || item.Removed)
        {
            return 0;
        }

        return (uint)item.File.Operations.Poll((PollEvents)wanted) & wanted;
    }

    /// <summary>Puts the item on the ready list (if it is not there) and wakes both kinds of waiters.</summary>
    private void MakeReady(EpollItem item)
    {
        lock (gate)
        {
            if (item.Removed)
            {
                return;
            }

            if (item.ReadyNode.List is null)
            {
                ready.AddLast(item.ReadyNode);
            }
        }

        TaskWaiters.Notify(PollEvents.In);
        Waiters.Notify(PollEvents.In | PollEvents.ReadNormal);
    }

    /// <summary>
    /// The wake-up callback (ep_poll_callback): returns true when it "woke" someone in the sense of
    /// an exclusive wake-up, which ends the walk over a file's exclusive items.
    /// </summary>
    internal bool Callback(EpollItem item, PollEvents events)
    {
        bool exclusiveWake = false;
        bool wakeTasks = false, wakePollers = false;
        uint itemEvents;
        lock (gate)
        {
            itemEvents = item.Events;
            if (!item.Removed && (itemEvents & ~PrivateBits) != 0 && (events == 0 || ((uint)events & itemEvents) != 0))
            {
                if (item.ReadyNode.List is null)
                {
                    ready.AddLast(item.ReadyNode);
                }

                if (TaskWaiters.HasListeners)
                {
                    wakeTasks = true;
                    if ((itemEvents & EPOLLEXCLUSIVE) != 0)
                    {
                        exclusiveWake = ((uint)events & (EPOLLIN | EPOLLOUT)) switch
                        {
                            EPOLLIN => (itemEvents & EPOLLIN) != 0,
                            EPOLLOUT => (itemEvents & EPOLLOUT) != 0,
                            0 => true,
                            _ => false,
                        };
                    }
                }

                wakePollers = Waiters.HasListeners;
            }
        }

        if (wakeTasks)
        {
            TaskWaiters.Notify(PollEvents.In);
        }

        if (wakePollers)
        {
            Waiters.Notify(PollEvents.In | PollEvents.ReadNormal);
        }

        return (itemEvents & EPOLLEXCLUSIVE) == 0 || exclusiveWake;
    }

    /// <summary>
    /// Reports up to <paramref name="max"/> ready events into program memory at
    /// <paramref name="address"/> (ep_send_events); 0 when every ready item turned out stale.
    /// </summary>
    public int SendEvents(IProcessMemory memory, ulong address, int max)
    {
        lock (scanLock)
        {
            EpollItem[] scan;
            lock (gate)
            {
                if (ready.Count == 0)
                {
                    return 0;
                }

                scan = [.. ready];
                ready.Clear();
            }

            int reported = 0;
            int i = 0;
            Span<byte> record = stackalloc byte[EventSize];
            try
            {
                for (; i < scan.Length && reported < max; i++)
                {
                    var item = scan[i];
                    uint revents = PollItem(item);
                    if (revents == 0)
                    {
                        continue; // stale: dropped until its file wakes it again
                    }

                    var ev = new LinuxEpollEvent { Events = revents, Data = item.Data };
                    MemoryMarshal.Write(record, in ev);
                    try
                    {
                        memory.Write(address + (ulong)(reported * EventSize), record);
                    }
                    catch (ErrnoException) when (reported > 0)
                    {
                        break;
                    }

                    reported++;
                    lock (gate)
                    {
                        if ((item.Events & EPOLLONESHOT) != 0)
                        {
                            item.Events &= PrivateBits;
                        }
                        else if ((item.Events & EPOLLET) == 0 && !item.Removed && item.ReadyNode.List is null)
                        {
                            ready.AddLast(item.ReadyNode); // level-triggered: polled again next time
                        }
                    }
                }
            }
            finally
            {
                // What was not looked at goes back in front, in order.
                lock (gate)
                {
                    for (int j = scan.Length - 1; j >= i; j--)
                    {
                        var item = scan[j];
                        if (!item.Removed && item.ReadyNode.List is null)
                        {
                            ready.AddFirst(item.ReadyNode);
                        }
                    }
                }
            }

            return reported;
        }
    }

    /// <summary>
    /// ep_loop_check: true when adding <paramref name="target"/> here would close a cycle or nest
    /// epoll instances deeper than <see cref="MaxNests"/>, counting the instances above this one.
    /// </summary>
    private bool LoopCheck(EpollInstance target)
    {
        int depth = DepthBelow(target, 0);
        if (depth > MaxNests)
        {
            return true;
        }

        return depth + 1 + DepthAbove(this, 0) > MaxNests;
    }

    private int DepthBelow(EpollInstance instance, int depth)
    {
        int result = 0;
        foreach (var nested in instance.NestedInstances())
        {
            result = nested == this || depth > MaxNests
                ? MaxNests + 1
                : Math.Max(result, DepthBelow(nested, depth + 1) + 1);
            if (result > MaxNests)
            {
                break;
            }
        }

        return result;
    }

    private static int DepthAbove(EpollInstance instance, int depth)
    {
        if (depth > MaxNests || instance.Description is not { } description)
        {
            return 0;
        }

        int result = 0;
        foreach (var watcher in description.Watchers)
        {
            if (watcher is EpollInstance parent)
            {
                result = Math.Max(result, DepthAbove(parent, depth + 1) + 1);
            }
        }

        return result;
    }

    private List<EpollInstance> NestedInstances()
    {
        var nested = new List<EpollInstance>();
        lock (gate)
        {
            foreach (var file in byFile.Keys)
            {
                if (file.Operations is EpollInstance instance)
                {
                    nested.Add(instance);
                }
            }
        }

        return nested;
    }

    /// <summary>The epoll fd's last reference went: every item leaves its file's queue.</summary>
    public void Release()
    {
        EpollItem[] all;
        lock (gate)
        {
            released = true;
            all = [.. items.Values];
            items.Clear();
            byFile.Clear();
            ready.Clear();
            foreach (var item in all)
            {
                item.Removed = true;
            }
        }

        foreach (var item in all)
        {
            Unregister(item);
            item.File.RemoveWatcher(this);
        }
    }
}

/// <summary>One entry of an epoll interest list (Linux's epitem).</summary>
internal sealed class EpollItem : IEventListener
{
    public EpollItem(EpollInstance owner, FileDescription file, int fd, uint events, ulong data, WaitQueue queue)
    {
        Owner = owner;
        File = file;
        Fd = fd;
        Events = events;
        Data = data;
        Queue = queue;
        ReadyNode = new LinkedListNode<EpollItem>(this);
    }

    public EpollInstance Owner { get; }

    public FileDescription File { get; }

    public int Fd { get; }

    /// <summary>The requested events with EPOLLERR, EPOLLHUP and the private bits; only private bits once a one-shot item fired.</summary>
    public uint Events { get; set; }

    public ulong Data { get; set; }

    /// <summary>The file's queue the item's callback is registered on.</summary>
    public WaitQueue Queue { get; }

    /// <summary>The item's place on the ready list (on it when its List is set).</summary>
    public LinkedListNode<EpollItem> ReadyNode { get; }

    public bool Removed { get; set; }

    void IEventListener.OnEvents(PollEvents events) => Owner.Callback(this, events);
}

/// <summary>
/// EPOLLEXCLUSIVE: the exclusive items watching one file's queue share one registration on it,
/// and a wake-up walks them in order, stopping at the first whose epoll had a task to wake (as
/// Linux's exclusive wait entries do), so one event does not wake every epoll_wait.
/// </summary>
internal sealed class ExclusiveWakeList : IEventListener
{
    private static readonly ConditionalWeakTable<WaitQueue, ExclusiveWakeList> Lists = new();

    private EpollItem[] items = [];

    public static void Add(WaitQueue queue, EpollItem item)
    {
        lock (Lists)
        {
            var list = Lists.GetValue(queue, static _ => new ExclusiveWakeList());
            if (list.items.Length == 0)
            {
                queue.Register(list, PollEvents.All);
            }

            list.items = [.. list.items, item];
        }
    }

    public static void Remove(WaitQueue queue, EpollItem item)
    {
        lock (Lists)
        {
            if (!Lists.TryGetValue(queue, out var list))
            {
                return;
            }

            list.items = [.. list.items.Where(i => i != item)];
            if (list.items.Length == 0)
            {
                queue.Unregister(list);
                Lists.Remove(queue);
            }
        }
    }

    public void OnEvents(PollEvents events)
    {
        foreach (var item in Volatile.Read(ref items))
        {
            if (item.Owner.Callback(item, events))
            {
                break;
            }
        }
    }
}
