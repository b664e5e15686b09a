using System.Collections.Concurrent;
using AppKernel.Sentry.Native;
using AppKernel.Vfs;

namespace AppKernel.Sentry.Vfs;

/// <summary>
/// Watches the host fds the Sentry owns (stdio, pipes to the host application) with one epoll
/// on one thread, turning their readiness into <see cref="WaitQueue"/> notifications so a task
/// blocked on host I/O stays interruptible by signals.
/// </summary>
internal sealed unsafe class HostPoller : IDisposable
{
    private readonly int epoll;
    private readonly int wakeFd;
    private readonly ConcurrentDictionary<int, WaitQueue> queues = new();
    private readonly Thread thread;
    private volatile bool stopping;

    public HostPoller()
    {
        epoll = LibC.EpollCreate1(LibC.O_CLOEXEC);
        if (epoll < 0)
        {
            throw LibC.HostError("epoll_create1");
        }

        wakeFd = LibC.Eventfd(0, LibC.O_CLOEXEC | LibC.O_NONBLOCK);
        var ev = new LibC.EpollEvent { Events = LibC.EPOLLIN, Data = ulong.MaxValue };
        LibC.EpollCtl(epoll, LibC.EPOLL_CTL_ADD, wakeFd, &ev);
        thread = new Thread(Run) { IsBackground = true, Name = "appkernel host poller" };
        thread.Start();
    }

    /// <summary>Watches <paramref name="fd"/> edge-triggered; its readiness changes are announced on <paramref name="queue"/>.</summary>
    public void Watch(int fd, WaitQueue queue)
    {
        queues[fd] = queue;
        var ev = new LibC.EpollEvent
        {
            Events = LibC.EPOLLIN | LibC.EPOLLPRI | LibC.EPOLLOUT | LibC.EPOLLRDHUP | LibC.EPOLLET,
            Data = (ulong)fd,
        };
        if (LibC.EpollCtl(epoll, LibC.EPOLL_CTL_ADD, fd, &ev) != 0)
        {
            // Regular files cannot be polled (EPERM); they are always ready anyway.
            queues.TryRemove(fd, out _);
        }
    }

    public void Unwatch(int fd)
    {
        if (queues.TryRemove(fd, out _))
        {
            LibC.EpollCtl(epoll, LibC.EPOLL_CTL_DEL, fd, null);
        }
    }

    private void Run()
    {
        const int Max = 32;
        var events = stackalloc LibC.EpollEvent[Max];
        while (!stopping)
        {
            int n = LibC.EpollWait(epoll, events, Max, -1);
            if (n < 0)
            {
                if (LibC.Errno == LibC.EINTR)
                {
                    continue;
                }

                return;
            }

            for (int i = 0; i < n; i++)
            {
                if (events[i].Data == ulong.MaxValue)
                {
                    continue;
                }

                if (queues.TryGetValue((int)events[i].Data, out var queue))
                {
                    queue.Notify(ToPollEvents(events[i].Events));
                }
            }
        }
    }

    private static PollEvents ToPollEvents(uint events)
    {
        PollEvents result = 0;
        if ((events & LibC.EPOLLIN) != 0) result |= PollEvents.In | PollEvents.ReadNormal;
        if ((events & LibC.EPOLLPRI) != 0) result |= PollEvents.Priority | PollEvents.ReadBand;
        if ((events & LibC.EPOLLOUT) != 0) result |= PollEvents.Out | PollEvents.WriteNormal;
        if ((events & LibC.EPOLLERR) != 0) result |= PollEvents.Error;
        if ((events & LibC.EPOLLHUP) != 0) result |= PollEvents.HangUp;
        if ((events & LibC.EPOLLRDHUP) != 0) result |= PollEvents.ReadHangUp | PollEvents.In;
        return result;
    }

    public void Dispose()
    {
        stopping = true;
        ulong one = 1;
        LibC.Write(wakeFd, (byte*)&one, 8);
        thread.Join(TimeSpan.FromSeconds(1));
        LibC.Close(wakeFd);
        LibC.Close(epoll);
    }
}
