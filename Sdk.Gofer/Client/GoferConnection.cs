using System.Diagnostics;
using System.Threading.Channels;
using AppKernel.Gofer.Client;
using AppKernel.Gofer.Native;
using AppKernel.Gofer.Protocol;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace AppKernel.Gofer;

/// <summary>What the Gofer reported about one of its attach roots.</summary>
/// <param name="Index">The root's index (what <see cref="GoferFileSystem"/> attaches to).</param>
/// <param name="ReadOnly">Whether the Gofer refuses mutations under it.</param>
public readonly record struct GoferRootInfo(int Index, bool ReadOnly);

/// <summary>
/// A running Gofer and the Sentry's connections to it. Created by <see cref="GoferLauncher.Start(IReadOnlyList{GoferRoot}, GoferLaunchOptions?, ILogger?)"/>;
/// disposing it closes the connections (the Gofer exits on end of file) and reaps the process.
/// </summary>
/// <remarks>
/// <para>Requests travel on a pool of SOCK_SEQPACKET connections: a thread takes an idle
/// connection, sends, and blocks in recvmsg on that same socket for the answer, so a round
/// trip costs two kernel wake-ups and no hand-off between client threads. When every
/// connection is busy, a new one is created (its socket end is passed to the Gofer over the
/// control connection), up to <see cref="GoferLaunchOptions.MaxConnections"/>. The protocol's
/// tags are checked on every answer.</para>
/// <para>If the Gofer dies, every pending request fails at once (its socket reads end of file)
/// and every later one fails immediately, with EIO for the program and the cause (exit
/// status, signal, what the Gofer printed) in the exception's message and in the log.</para>
/// <para>Nodes the client no longer uses are released in batches: finalizers post them to a
/// <see cref="Channel{T}"/> drained by one background task, so that no finalizer ever blocks on
/// the socket.</para>
/// </remarks>
public sealed partial class GoferConnection : IDisposable
{
    private readonly GoferProcess process;
    private readonly ILogger logger;
    private readonly GoferLaunchOptions options;
    private readonly PooledSocket control;
    private readonly object controlGate = new();
    private readonly object poolGate = new();
    private readonly Stack<PooledSocket> idle = new();
    private readonly List<PooledSocket> all = [];
    private readonly SemaphoreSlim slots;
    private readonly object readyGate = new();
    private readonly Channel<ReleasedNode> releases = Channel.CreateUnbounded<ReleasedNode>(new UnboundedChannelOptions { SingleReader = true });
    private readonly Task releaseDrainer;
    private volatile bool ready;
    private volatile string? failure;
    private Exception? startError;
    private GoferRootInfo[] roots = [];
    private readonly int handshakeSendError;
    private long liveNodes;
    private readonly long[] requestCounts = new long[RequestCounterSlots];
    private readonly long[] requestTicks = new long[RequestCounterSlots];
    private long nextCollectionAt;
    private bool disposed;

    private const int RequestCounterSlots = 32;

    internal GoferConnection(GoferProcess process, int controlFd, int dataFd, GoferLaunchOptions options, ILogger? logger)
    {
        this.process = process;
        this.options = options;
        this.logger = logger ?? NullLogger.Instance;
        control = new PooledSocket(controlFd);
        var data = new PooledSocket(dataFd);
        ApplyTimeout(data);
        all.Add(data);
        idle.Push(data);
        slots = new SemaphoreSlim(Math.Max(1, options.MaxConnections));
        process.Exited = OnProcessExited;
        releaseDrainer = Task.Run(DrainReleasesAsync);

        // The version request goes out at once, so that the Gofer answers as soon as it is up,
        // whenever the Sentry first needs it; the answer is read by WaitUntilReady.
        control.SetReceiveTimeout(options.StartupTimeout);
        var w = control.Begin(Op.Version);
        w.U32(Wire.Version);
        handshakeSendError = SeqPacket.Send(control.Fd, w.Finish());
    }

    /// <summary>The Gofer's process id.</summary>
    public int ProcessId => process.Pid;

    /// <summary>
    /// The Gofer's time to ready: from the spawn to the moment it answered the version
    /// handshake (both stamped with the monotonic clock), once the handshake is done.
    /// </summary>
    public TimeSpan? StartupTime { get; private set; }

    /// <summary>Of <see cref="StartupTime"/>, the part before the Gofer's Main ran (the .NET host and runtime start).</summary>
    public TimeSpan? RuntimeStartTime { get; private set; }

    /// <summary>
    /// What confinement the Gofer had to skip (for instance no mount namespace or capability drop
    /// when it does not run as root), empty when fully confined; known once the handshake is done.
    /// </summary>
    public string ConfinementNote { get; private set; } = string.Empty;

    /// <summary>Of <see cref="StartupTime"/>, the part the Gofer spent confining itself (mount namespace, pivot_root, capabilities, seccomp).</summary>
    public TimeSpan? ConfinementTime { get; private set; }

    /// <summary>Why the connection no longer works (the Gofer died, was disposed...), or null while it does.</summary>
    public string? FailureReason => failure;

    /// <summary>Nodes the client holds (inodes alive or awaiting finalization), for diagnostics.</summary>
    public long LiveNodes => Interlocked.Read(ref liveNodes);

    /// <summary>
    /// Round trips made so far, by operation name (only operations used at least once), with the
    /// time spent waiting for their answers: for profiling how many Gofer requests a workload costs.
    /// </summary>
    public IReadOnlyDictionary<string, (long Count, TimeSpan Time)> RequestStatistics
    {
        get
        {
            var result = new SortedDictionary<string, (long Count, TimeSpan Time)>(StringComparer.Ordinal);
            for (int op = 0; op < RequestCounterSlots; op++)
            {
                long count = Interlocked.Read(ref requestCounts[op]);
                if (count != 0)
                {
                    result[((Op)op).ToString()] = (count, Stopwatch.GetElapsedTime(0, Interlocked.Read(ref requestTicks[op])));
                }
            }

            return result;
        }
    }

    /// <summary>Connections currently open (for diagnostics).</summary>
    public int ConnectionCount
    {
        get
        {
            lock (poolGate)
            {
                return all.Count;
            }
        }
    }

    /// <summary>The attach roots, once the Gofer is ready (waits for the handshake).</summary>
    public IReadOnlyList<GoferRootInfo> Roots
    {
        get
        {
            WaitUntilReady();
            return roots;
        }
    }

    /// <summary>
    /// Waits for the version handshake. Requests wait for it implicitly; call this to start the
    /// Gofer early and learn of failures at a chosen point.
    /// </summary>
    /// <exception cref="GoferException">The Gofer failed to start; the message says why.</exception>
    public void WaitUntilReady()
    {
        if (ready)
        {
            return;
        }

        lock (readyGate)
        {
            if (ready)
            {
                return;
            }

            if (startError is not null)
            {
                throw new GoferException(startError.Message, startError);
            }

            try
            {
                Handshake();
                ready = true;
            }
            catch (Exception e)
            {
                startError = e is GoferException ? e : new GoferException($"gofer failed to start: {e.Message}", e);
                Fail(startError.Message, log: true);
                throw startError;
            }
        }
    }

    /// <summary>Closes the connections, waits for the Gofer to exit (killing it if it does not) and reaps it.</summary>
    public void Dispose()
    {
        lock (poolGate)
        {
            if (disposed)
            {
                return;
            }

            disposed = true;
        }

        if (logger.IsEnabled(LogLevel.Information))
        {
            var statistics = RequestStatistics;
            if (statistics.Count != 0)
            {
                LogStatistics(logger, process.Pid, string.Join(", ", statistics.Select(s => $"{s.Key} {s.Value.Count} ({s.Value.Time.TotalMilliseconds:0.#} ms)")));
            }
        }

        failure ??= "the gofer connection was disposed";
        releases.Writer.TryComplete();
        ShutdownSockets();
        lock (controlGate)
        {
            control.Close();
        }

        if (!process.WaitForExit(TimeSpan.FromSeconds(2)))
        {
            process.Kill();
            process.WaitForExit(TimeSpan.FromSeconds(5));
        }

        lock (poolGate)
        {
            foreach (var socket in idle)
            {
                socket.Close();
            }

            idle.Clear();
        }
    }

    /// <summary>
    /// Closes the Sentry's ends of every connection as the Sentry's death would, without
    /// waiting for the Gofer (tests: the Gofer must exit on end of file by itself).
    /// </summary>
    internal void AbandonForTest()
    {
        failure ??= "abandoned";
        lock (poolGate)
        {
            foreach (var socket in all)
            {
                socket.Close();
            }
        }

        control.Close();
    }

    /// <summary>Waits for the Gofer process to be reaped (tests).</summary>
    internal bool WaitForExitForTest(TimeSpan timeout) => process.WaitForExit(timeout);

    // ---- Handshake and failure ------------------------------------------------------------

    private void Handshake()
    {
        lock (controlGate)
        {
            var timeout = options.StartupTimeout;
            if (handshakeSendError != 0)
            {
                throw new GoferException($"gofer failed to start: {DescribeDeath($"cannot send the handshake ({Host.ErrnoName(handshakeSendError)})")}");
            }

            int length;
            try
            {
                length = SeqPacket.Receive(control.Fd, control.ReceiveBuffer, out int fd);
                Host.CloseQuietly(fd);
            }
            catch (ProtocolException e)
            {
                throw new GoferException($"gofer failed to start: {e.Message}");
            }

            if (length == -Host.EAGAIN)
            {
                process.Kill();
                throw new GoferException($"gofer failed to start: no handshake within {timeout.TotalSeconds:0.#} s");
            }

            if (length <= 0)
            {
                throw new GoferException($"gofer failed to start: {DescribeDeath(length == 0 ? "it closed the connection" : $"receive failed ({Host.ErrnoName(-length)})")}");
            }

            var r = new MessageReader(control.ReceiveBuffer.AsSpan(0, length));
            if (r.Op != Op.Version || r.Tag != control.LastTag)
            {
                throw new GoferException("gofer failed to start: it answered the handshake with an unexpected message");
            }

            if (r.Status != 0)
            {
                string detail = r.Rest() ?? Host.ErrnoName(r.Status);
                process.WaitForExit(TimeSpan.FromSeconds(1));
                throw new GoferException($"gofer failed to start: {detail}");
            }

            uint version = r.U32();
            if (version != Wire.Version)
            {
                throw new GoferException($"gofer speaks protocol {version}, the client {Wire.Version}");
            }

            int count = (int)r.U32();
            var list = new GoferRootInfo[count];
            for (int i = 0; i < count; i++)
            {
                list[i] = new GoferRootInfo(i, r.U8() != 0);
            }

            long mainEntered = r.I64();
            long readyAt = r.I64();
            ConfinementTime = Stopwatch.GetElapsedTime(0, r.I64());
            ConfinementNote = r.String();
            roots = list;
            StartupTime = Stopwatch.GetElapsedTime(process.SpawnTimestamp, readyAt);
            RuntimeStartTime = Stopwatch.GetElapsedTime(process.SpawnTimestamp, mainEntered);
            control.SetReceiveTimeout(options.RequestTimeout);
            LogReady(logger, process.Pid, StartupTime.Value.TotalMilliseconds, RuntimeStartTime.Value.TotalMilliseconds);
            if (ConfinementNote.Length > 0)
            {
                LogConfinement(logger, process.Pid, ConfinementNote);
            }
        }
    }

    private void OnProcessExited(string description)
    {
        if (!Volatile.Read(ref disposed))
        {
            Fail(description, log: true);
        }
    }

    /// <summary>Marks the connection unusable (first cause wins) and wakes every blocked request.</summary>
    private void Fail(string cause, bool log)
    {
        if (Interlocked.CompareExchange(ref failure, cause, null) is null && log && !Volatile.Read(ref disposed))
        {
            LogFailed(logger, process.Pid, cause);
        }

        process.Kill();
        ShutdownSockets();
    }

    private void ShutdownSockets()
    {
        lock (poolGate)
        {
            foreach (var socket in all)
            {
                socket.Shutdown();
            }
        }

        control.Shutdown();
    }

    /// <summary>The cause of a transport failure, with the Gofer's exit status when it is gone.</summary>
    private string DescribeDeath(string what)
    {
        // The socket reads end of file a moment before the process becomes reapable.
        process.WaitForExit(TimeSpan.FromMilliseconds(500));
        return process.HasExited ? $"{what}: {process.DescribeExit()}" : $"{what} (gofer pid {process.Pid} still running)";
    }

    private ErrnoException Dead() =>
        new(Errno.EIO, $"gofer unavailable: {failure}");

    // ---- Requests -------------------------------------------------------------------------

    /// <summary>Takes an idle connection (creating one when all are busy); waits for the handshake first.</summary>
    internal PooledSocket Rent()
    {
        if (!ready)
        {
            try
            {
                WaitUntilReady();
            }
            catch (GoferException e)
            {
                throw new ErrnoException(Errno.EIO, e.Message);
            }
        }

        if (failure is not null)
        {
            throw Dead();
        }

        slots.Wait();
        lock (poolGate)
        {
            if (idle.TryPop(out var socket))
            {
                return socket;
            }
        }

        try
        {
            return Connect();
        }
        catch
        {
            slots.Release();
            throw;
        }
    }

    /// <summary>Gives a connection back (closing it if it broke).</summary>
    internal void Return(PooledSocket socket)
    {
        lock (poolGate)
        {
            if (socket.Broken || disposed)
            {
                all.Remove(socket);
                socket.Close();
            }
            else
            {
                idle.Push(socket);
            }
        }

        slots.Release();
    }

    /// <summary>Sends the request built in <paramref name="socket"/>'s buffer and receives its answer.</summary>
    /// <exception cref="ErrnoException">EIO when the Gofer is gone, did not answer in time, or broke the protocol.</exception>
    internal MessageReader Exchange(PooledSocket socket, ReadOnlySpan<byte> request, int passFd, out int receivedFd)
    {
        receivedFd = -1;
        long started = Stopwatch.GetTimestamp();
        int op = request.Length >= Wire.HeaderSize ? BitConverter.ToUInt16(request[8..10]) % RequestCounterSlots : 0;
        int sent = SeqPacket.Send(socket.Fd, request, passFd);
        if (sent != 0)
        {
            socket.Broken = true;
            Fail(DescribeDeath($"sending a request failed ({Host.ErrnoName(sent)})"), log: true);
            throw Dead();
        }

        int length;
        try
        {
            length = SeqPacket.Receive(socket.Fd, socket.ReceiveBuffer, out receivedFd);
        }
        catch (ProtocolException e)
        {
            socket.Broken = true;
            Fail($"protocol error: {e.Message}", log: true);
            throw Dead();
        }

        if (length == -Host.EAGAIN)
        {
            // Timed out: the late answer would confuse the next request, so drop the connection
            // (all of them when it is the control connection, which cannot be replaced).
            socket.Broken = true;
            LogTimeout(logger, process.Pid, options.RequestTimeout.TotalSeconds);
            string cause = $"gofer (pid {process.Pid}) did not answer within {options.RequestTimeout.TotalSeconds:0.#} s";
            if (socket == control)
            {
                Fail(cause, log: true);
            }

            throw new ErrnoException(Errno.EIO, cause);
        }

        if (length <= 0)
        {
            socket.Broken = true;
            if (failure is null)
            {
                Fail(DescribeDeath(length == 0 ? "the gofer closed its connection" : $"receive failed ({Host.ErrnoName(-length)})"), log: true);
            }

            throw Dead();
        }

        MessageReader r;
        try
        {
            r = new MessageReader(socket.ReceiveBuffer.AsSpan(0, length));
        }
        catch (ProtocolException e)
        {
            Host.CloseQuietly(receivedFd);
            socket.Broken = true;
            Fail($"protocol error: {e.Message}", log: true);
            throw Dead();
        }

        if (r.Tag != socket.LastTag || (receivedFd >= 0) != ((r.Flags & Wire.FlagHasFd) != 0))
        {
            Host.CloseQuietly(receivedFd);
            socket.Broken = true;
            Fail($"protocol error: answer tag {r.Tag} for request {socket.LastTag}", log: true);
            throw Dead();
        }

        if (r.Status != 0 && receivedFd >= 0)
        {
            Host.Close(receivedFd);
            receivedFd = -1;
        }

        Interlocked.Increment(ref requestCounts[op]);
        Interlocked.Add(ref requestTicks[op], Stopwatch.GetTimestamp() - started);
        return r;
    }

    private PooledSocket Connect()
    {
        if (SeqPacket.CreatePair(out int mine, out int theirs) is int errno and not 0)
        {
            throw new ErrnoException((Errno)errno, "cannot create a gofer connection");
        }

        var socket = new PooledSocket(mine);
        try
        {
            lock (controlGate)
            {
                if (failure is not null)
                {
                    throw Dead();
                }

                var w = control.Begin(Op.Connect);
                var r = Exchange(control, w.Finish(), theirs, out int fd);
                Host.CloseQuietly(fd);
                if (r.Status != 0)
                {
                    throw new ErrnoException((Errno)r.Status, "the gofer refused a new connection");
                }
            }
        }
        catch
        {
            socket.Close();
            throw;
        }
        finally
        {
            Host.Close(theirs);
        }

        ApplyTimeout(socket);
        lock (poolGate)
        {
            all.Add(socket);
        }

        return socket;
    }

    private void ApplyTimeout(PooledSocket socket) => socket.SetReceiveTimeout(options.RequestTimeout);

    // ---- Node release -------------------------------------------------------------------

    /// <summary>Counts a node an inode now holds; past the soft limit, nudges the GC to find dropped inodes.</summary>
    internal void NodeAdopted()
    {
        long live = Interlocked.Increment(ref liveNodes);
        int limit = options.NodeSoftLimit;
        if (limit > 0 && live > limit && live >= Interlocked.Read(ref nextCollectionAt))
        {
            Interlocked.Exchange(ref nextCollectionAt, live + Math.Max(1024, limit / 8));
            GC.Collect(2, GCCollectionMode.Optimized, blocking: false);
        }
    }

    /// <summary>Counts a node an inode no longer holds.</summary>
    internal void NodeDropped() => Interlocked.Decrement(ref liveNodes);

    /// <summary>Queues a node the client dropped (callable from finalizers: never blocks).</summary>
    internal void QueueRelease(in ReleasedNode node) => releases.Writer.TryWrite(node);

    private async Task DrainReleasesAsync()
    {
        var reader = releases.Reader;
        var batch = new List<ReleasedNode>();
        while (await reader.WaitToReadAsync().ConfigureAwait(false))
        {
            while (batch.Count < Wire.MaxReleaseBatch && reader.TryRead(out var item))
            {
                batch.Add(item);
            }

            foreach (var item in batch)
            {
                try
                {
                    item.FileSystem?.Forget(item);
                }
                catch (Exception e)
                {
                    LogReleaseFailed(logger, e);
                }
            }

            try
            {
                if (failure is null && ready)
                {
                    SendRelease(batch);
                }
            }
            catch (ErrnoException)
            {
                // The connection failed (and said why): the Gofer forgets every node when it exits.
            }

            batch.Clear();
        }
    }

    private void SendRelease(List<ReleasedNode> batch)
    {
        lock (controlGate)
        {
            if (failure is not null)
            {
                return;
            }

            var w = control.Begin(Op.Release);
            int count = 0;
            foreach (var item in batch)
            {
                if (item.Node != 0)
                {
                    count++;
                }
            }

            if (count == 0)
            {
                return;
            }

            w.U32((uint)count);
            foreach (var item in batch)
            {
                if (item.Node != 0)
                {
                    w.U64(item.Node);
                }
            }

            var r = Exchange(control, w.Finish(), -1, out int fd);
            Host.CloseQuietly(fd);
            _ = r.Status;
        }
    }

    // ---- Logging --------------------------------------------------------------------------

    [LoggerMessage(EventId = 5, Level = LogLevel.Information, Message = "Gofer {Pid} round trips: {Statistics}")]
    private static partial void LogStatistics(ILogger logger, int pid, string statistics);

    [LoggerMessage(EventId = 1, Level = LogLevel.Debug, Message = "Gofer {Pid} ready in {Milliseconds:0.0} ms (runtime start {RuntimeMilliseconds:0.0} ms)")]
    private static partial void LogReady(ILogger logger, int pid, double milliseconds, double runtimeMilliseconds);

    [LoggerMessage(EventId = 5, Level = LogLevel.Information, Message = "Gofer {Pid} runs with less confinement: {Note}")]
    private static partial void LogConfinement(ILogger logger, int pid, string note);

    [LoggerMessage(EventId = 2, Level = LogLevel.Error, Message = "Gofer {Pid} failed: {Cause}; file requests now fail with EIO")]
    private static partial void LogFailed(ILogger logger, int pid, string cause);

    [LoggerMessage(EventId = 4, Level = LogLevel.Warning, Message = "Releasing a gofer inode's resources failed")]
    private static partial void LogReleaseFailed(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 3, Level = LogLevel.Warning, Message = "Gofer {Pid} did not answer a request within {Seconds} s; its connection was dropped")]
    private static partial void LogTimeout(ILogger logger, int pid, double seconds);
}
