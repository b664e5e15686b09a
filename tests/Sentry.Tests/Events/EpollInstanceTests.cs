using System.Buffers.Binary;
using AppKernel.Sentry.Kernel.Events;
using AppKernel.Sentry.Vfs;
using AppKernel.Syscalls;
using AppKernel.Vfs;

namespace AppKernel.Sentry.Tests.Events;

/// <summary>
/// The epoll instance without a program: what single-threaded fixtures cannot show (exclusive
/// wake-ups, which need blocked waiters), the interest list's life with its descriptions, and the
/// ready list under concurrent wake-ups.
/// </summary>
[TestClass]
public sealed class EpollInstanceTests
{
    [TestMethod]
    public void AnExclusiveWakeUpStopsAtTheFirstEpollWithABlockedWaiter()
    {
        var (efd, counter) = EventFile();
        var (first, _) = Epoll();
        var (second, _) = Epoll();
        first.Add(efd, 5, EpollInstance.EPOLLIN | EpollInstance.EPOLLEXCLUSIVE, 1);
        second.Add(efd, 5, EpollInstance.EPOLLIN | EpollInstance.EPOLLEXCLUSIVE, 2);
        var firstWaiter = new CountingListener();
        var secondWaiter = new CountingListener();
        first.TaskWaiters.Register(firstWaiter, PollEvents.All);
        second.TaskWaiters.Register(secondWaiter, PollEvents.All);

        Signal(counter);

        Assert.AreEqual(1, firstWaiter.Count);
        Assert.AreEqual(0, secondWaiter.Count, "the second exclusive epoll must not be woken");
        Assert.IsTrue(first.HasReady);
        Assert.IsFalse(second.HasReady);
    }

    [TestMethod]
    public void ExclusiveItemsWithoutBlockedWaitersAreAllQueued()
    {
        var (efd, counter) = EventFile();
        var (first, _) = Epoll();
        var (second, _) = Epoll();
        first.Add(efd, 5, EpollInstance.EPOLLIN | EpollInstance.EPOLLEXCLUSIVE | EpollInstance.EPOLLET, 1);
        second.Add(efd, 5, EpollInstance.EPOLLIN | EpollInstance.EPOLLEXCLUSIVE | EpollInstance.EPOLLET, 2);

        Signal(counter);

        Assert.IsTrue(first.HasReady);
        Assert.IsTrue(second.HasReady);
        Assert.AreEqual(1, Wait(first, 4).Count);
        Assert.AreEqual(1, Wait(second, 4).Count);
    }

    [TestMethod]
    public void WithoutExclusiveEveryBlockedWaiterIsWoken()
    {
        var (efd, counter) = EventFile();
        var (first, _) = Epoll();
        var (second, _) = Epoll();
        first.Add(efd, 5, EpollInstance.EPOLLIN, 1);
        second.Add(efd, 5, EpollInstance.EPOLLIN, 2);
        var firstWaiter = new CountingListener();
        var secondWaiter = new CountingListener();
        first.TaskWaiters.Register(firstWaiter, PollEvents.All);
        second.TaskWaiters.Register(secondWaiter, PollEvents.All);

        Signal(counter);

        Assert.AreEqual(1, firstWaiter.Count);
        Assert.AreEqual(1, secondWaiter.Count);
    }

    [TestMethod]
    public void AnItemLeavesWhenItsDescriptionsLastReferenceGoes()
    {
        var (efd, counter) = EventFile();
        var (epoll, _) = Epoll();
        epoll.Add(efd, 5, EpollInstance.EPOLLIN, 1);
        efd.AddReference(); // a dup

        efd.Release(); // one fd closed: the item stays
        Assert.AreEqual(1, epoll.Count);
        Signal(counter);
        Assert.AreEqual(1, Wait(epoll, 4).Count);

        efd.Release(); // the last one
        Assert.AreEqual(0, epoll.Count);
        Assert.IsFalse(epoll.HasReady);
        Assert.IsFalse(counter.Waiters.HasListeners, "the item's callback must leave the file's queue");
    }

    [TestMethod]
    public void ClosingTheEpollLeavesEveryFilesQueue()
    {
        var (efd, counter) = EventFile();
        var (epoll, description) = Epoll();
        epoll.Add(efd, 5, EpollInstance.EPOLLIN | EpollInstance.EPOLLEXCLUSIVE, 1);
        var (other, otherCounter) = EventFile();
        epoll.Add(other, 6, EpollInstance.EPOLLIN, 2);

        description.Release();

        Assert.IsFalse(counter.Waiters.HasListeners);
        Assert.IsFalse(otherCounter.Waiters.HasListeners);
        Assert.AreEqual(0, efd.Watchers.Length);
        Assert.AreEqual(0, other.Watchers.Length);
    }

    [TestMethod]
    public void NoEdgeTriggeredWakeUpIsLostUnderConcurrentWrites()
    {
        const int Files = 4, Writes = 2000;
        var (epoll, _) = Epoll();
        var counters = new EventFd[Files];
        for (int i = 0; i < Files; i++)
        {
            var (file, counter) = EventFile();
            counters[i] = counter;
            epoll.Add(file, 10 + i, EpollInstance.EPOLLIN | EpollInstance.EPOLLET, (ulong)i);
        }

        long consumed = 0;
        var writers = Enumerable.Range(0, Files).Select(i => Task.Run(() =>
        {
            for (int n = 0; n < Writes; n++)
            {
                Signal(counters[i]);
            }
        })).ToArray();

        void Drain()
        {
            foreach (var (_, data) in Wait(epoll, Files))
            {
                consumed += (long)Take(counters[(int)data]);
            }
        }

        while (!Task.WhenAll(writers).IsCompleted)
        {
            Drain();
        }

        Drain();
        Assert.AreEqual((long)Files * Writes, consumed, "every write must have been reported by an edge");
    }

    [TestMethod]
    public void LevelTriggeredItemsTakeTurnsWhenMaxeventsIsSmall()
    {
        var (epoll, _) = Epoll();
        for (int i = 0; i < 3; i++)
        {
            var (file, counter) = EventFile();
            Signal(counter);
            epoll.Add(file, 10 + i, EpollInstance.EPOLLIN, (ulong)i);
        }

        var order = Enumerable.Range(0, 5).Select(_ => Wait(epoll, 1).Single().Data).ToArray();
        CollectionAssert.AreEqual(new ulong[] { 0, 1, 2, 0, 1 }, order);
    }

    private static (FileDescription File, EventFd Counter) EventFile()
    {
        var counter = new EventFd(0, semaphore: false);
        return (new FileDescription(counter, null, OpenFlags.ReadWrite | OpenFlags.NonBlocking, "anon_inode:[eventfd]"), counter);
    }

    private static (EpollInstance Epoll, FileDescription Description) Epoll()
    {
        var epoll = new EpollInstance();
        var description = new FileDescription(epoll, null, OpenFlags.ReadWrite, "anon_inode:[eventpoll]");
        epoll.Description = description;
        return (epoll, description);
    }

    private static void Signal(EventFd counter) => counter.Write(null!, BitConverter.GetBytes(1UL), nonBlocking: true);

    private static ulong Take(EventFd counter)
    {
        var buffer = new byte[8];
        try
        {
            counter.Read(null!, buffer, nonBlocking: true);
        }
        catch (ErrnoException e) when (e.Errno == Errno.EAGAIN)
        {
            return 0;
        }

        return BitConverter.ToUInt64(buffer);
    }

    private static List<(uint Events, ulong Data)> Wait(EpollInstance epoll, int max)
    {
        var memory = new Memory();
        int n = epoll.SendEvents(memory, 0, max);
        var events = new List<(uint, ulong)>();
        for (int i = 0; i < n; i++)
        {
            var record = memory.Bytes.AsSpan(i * EpollInstance.EventSize);
            events.Add((BinaryPrimitives.ReadUInt32LittleEndian(record), BinaryPrimitives.ReadUInt64LittleEndian(record[4..])));
        }

        return events;
    }

    private sealed class CountingListener : IEventListener
    {
        private int count;

        public int Count => Volatile.Read(ref count);

        public void OnEvents(PollEvents events) => Interlocked.Increment(ref count);
    }

    /// <summary>Program memory for epoll_wait's events: one page at address 0.</summary>
    private sealed class Memory : IProcessMemory
    {
        public byte[] Bytes { get; } = new byte[4096];

        public void Read(ulong address, Span<byte> destination) => Bytes.AsSpan((int)address, destination.Length).CopyTo(destination);

        public void Write(ulong address, ReadOnlySpan<byte> source) => source.CopyTo(Bytes.AsSpan((int)address));

        public string ReadCString(ulong address, int maxLength = 4096) => throw new NotSupportedException();
    }
}
