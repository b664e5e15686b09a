using System.Net;
using System.Net.Sockets;
using System.Text;

namespace AppKernel.Integration.Tests;

/// <summary>
/// Network mode host: the Sentry's host sockets and their allow-list. Every address here is the
/// host's loopback; the listeners are the test's own, on ephemeral ports.
/// </summary>
[TestClass]
public sealed class HostNetworkTests
{
    private static string Python()
    {
        string? python = new[] { "/usr/bin/python3", "/usr/local/bin/python3" }.FirstOrDefault(File.Exists);
        if (python is null)
        {
            Assert.Inconclusive("python3 is not installed on this machine");
        }

        return python;
    }

    /// <summary>A port nothing listens on now (bound then closed by the test).</summary>
    private static int FreePort()
    {
        using var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        return ((IPEndPoint)probe.LocalEndpoint).Port;
    }

    private const string Client = """
        import socket, sys, errno
        port = int(sys.argv[1])
        s = socket.socket()
        rc = s.connect_ex(("127.0.0.1", port))
        print("connect:", errno.errorcode.get(rc, rc))
        if rc == 0:
            s.sendall(b"ping from inside")
            print("reply:", s.recv(100).decode())
            print("peer port ok:", s.getpeername() == ("127.0.0.1", port))
        """;

    private static async Task<string> ServeOnce(TcpListener listener)
    {
        using var client = await listener.AcceptTcpClientAsync().WaitAsync(TimeSpan.FromSeconds(120));
        var stream = client.GetStream();
        var buffer = new byte[100];
        int n = await stream.ReadAsync(buffer);
        string got = Encoding.ASCII.GetString(buffer, 0, n);
        await stream.WriteAsync(Encoding.ASCII.GetBytes("pong to " + got));
        return got;
    }

    [TestMethod]
    [DynamicData(nameof(Sandboxes.Platforms), typeof(Sandboxes))]
    public async Task AnAllowedHostListenerIsReachedAndDataFlowsBothWays(string platform)
    {
        using var host = new TcpListener(IPAddress.Loopback, 0);
        host.Start();
        int port = ((IPEndPoint)host.LocalEndpoint).Port;
        var served = ServeOnce(host);
        var run = await Sandboxes.Run(platform, Python(), ["-c", Client, port.ToString()], o =>
        {
            o.Network = NetworkMode.Host;
            o.AllowConnect.Add($"127.0.0.1/32:{port}");
        });
        Assert.AreEqual("connect: 0\nreply: pong to ping from inside\npeer port ok: True\n", run.Text, run.Error);
        Assert.AreEqual(0, run.Status, run.Error);
        Assert.AreEqual("ping from inside", await served);
    }

    [TestMethod]
    [DynamicData(nameof(Sandboxes.Platforms), typeof(Sandboxes))]
    public async Task AHostListenerOnAPortNotAllowedIsRefusedWithEaccesAndAudited(string platform)
    {
        using var host = new TcpListener(IPAddress.Loopback, 0);
        host.Start();
        int port = ((IPEndPoint)host.LocalEndpoint).Port;
        var events = new List<SandboxEvent>();
        var run = await Sandboxes.Run(
            platform,
            Python(),
            ["-c", Client, port.ToString()],
            o =>
            {
                o.Network = NetworkMode.Host;
                o.AuditEvents = true;
                o.AllowConnect.Add($"127.0.0.1/32:{(port == 65535 ? 1 : port + 1)}");
                o.AllowConnect.Add("::1/128");
            },
            afterExit: async sandbox =>
            {
                while (sandbox.Events.TryRead(out var e))
                {
                    events.Add(e);
                }

                await Task.CompletedTask;
            });
        Assert.AreEqual("connect: EACCES\n", run.Text, run.Error);
        Assert.AreEqual(0, run.Status, run.Error);
        Assert.IsFalse(host.Pending(), "a refused connection reached the host");
        var connect = events.Single(e => e.Kind == SandboxEventKind.Connect && e.Address == $"127.0.0.1:{port}");
        Assert.AreEqual(Errno.EACCES, connect.Errno);
        Assert.IsTrue(connect.IsDenied);
    }

    [TestMethod]
    [DynamicData(nameof(Sandboxes.Platforms), typeof(Sandboxes))]
    public async Task NetworkNoneRefusesTheSameHostListener(string platform)
    {
        using var host = new TcpListener(IPAddress.Loopback, 0);
        host.Start();
        int port = ((IPEndPoint)host.LocalEndpoint).Port;
        var run = await Sandboxes.Run(platform, Python(), ["-c", Client, port.ToString()]);
        Assert.AreEqual("connect: ECONNREFUSED\n", run.Text, run.Error);
        Assert.IsFalse(host.Pending(), "a connection reached the host");
    }

    private const string Server = """
        import socket, sys, errno
        allowed, denied, own = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
        d = socket.socket()
        try:
            d.bind(("127.0.0.1", denied))
            print("bind denied port: bound")
        except OSError as e:
            print("bind denied port:", errno.errorcode[e.errno])
        e0 = socket.socket()
        e0.bind(("127.0.0.1", 0))
        try:
            e0.listen()
            print("listen on an ephemeral port: listening")
        except OSError as e:
            print("listen on an ephemeral port:", errno.errorcode[e.errno])
        # The sandbox reaches its own listener without a connect rule.
        o = socket.socket()
        o.bind(("127.0.0.1", own))
        o.listen()
        me = socket.create_connection(("127.0.0.1", own))
        mine, _ = o.accept()
        me.sendall(b"self")
        print("to itself:", mine.recv(10).decode())
        me.close(); mine.close(); o.close()
        l = socket.socket()
        l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        l.bind(("127.0.0.1", allowed))
        l.listen()
        c, addr = l.accept()
        print("accepted from the host loopback:", addr[0])
        print("got:", c.recv(100).decode())
        c.sendall(b"hello host")
        c.close()
        """;

    [TestMethod]
    [DynamicData(nameof(Sandboxes.Platforms), typeof(Sandboxes))]
    public async Task BindIsCheckedAndAnAllowedListenerIsReachedFromTheHost(string platform)
    {
        int allowed = FreePort();
        int denied = FreePort();
        int own = FreePort();
        var program = Sandboxes.Run(platform, Python(), ["-c", Server, allowed.ToString(), denied.ToString(), own.ToString()], o =>
        {
            o.Network = NetworkMode.Host;
            o.AllowBind.Add(allowed);
            o.AllowBind.Add(own);
        });

        string reply = "";
        var deadline = DateTime.UtcNow.AddSeconds(120);
        while (DateTime.UtcNow < deadline && !program.IsCompleted)
        {
            using var client = new TcpClient();
            try
            {
                await client.ConnectAsync(IPAddress.Loopback, allowed);
            }
            catch (SocketException)
            {
                await Task.Delay(50);
                continue;
            }

            var stream = client.GetStream();
            await stream.WriteAsync(Encoding.ASCII.GetBytes("from the host"));
            var buffer = new byte[100];
            int n, total = 0;
            while ((n = await stream.ReadAsync(buffer.AsMemory(total))) > 0)
            {
                total += n;
            }

            reply = Encoding.ASCII.GetString(buffer, 0, total);
            break;
        }

        var run = await program;
        Assert.AreEqual(
            "bind denied port: EACCES\nlisten on an ephemeral port: EACCES\nto itself: self\naccepted from the host loopback: 127.0.0.1\ngot: from the host\n",
            run.Text,
            run.Error);
        Assert.AreEqual(0, run.Status, run.Error);
        Assert.AreEqual("hello host", reply);
    }

    private const string Behaviour = """
        import socket, select, errno, sys, os
        port, udpport = int(sys.argv[1]), int(sys.argv[2])
        # Non-blocking connect: EINPROGRESS (or done at once on the loopback), then writable and SO_ERROR 0.
        s = socket.socket(); s.setblocking(False)
        rc = s.connect_ex(("127.0.0.1", port))
        print("nonblocking connect:", errno.errorcode.get(rc, rc) in ("EINPROGRESS", 0))
        select.select([], [s], [], 30)
        print("SO_ERROR:", s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR))
        s.setblocking(True)
        s.sendall(b"x" * 100000)
        s.shutdown(socket.SHUT_WR)
        got = b""
        while True:
            b = s.recv(65536)
            if not b: break
            got += b
        print("echoed back:", len(got))
        print("TCP_NODELAY:", s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1), s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0)
        try:
            s.setsockopt(socket.SOL_SOCKET, 25, b"lo\0")
        except OSError as e:
            print("SO_BINDTODEVICE:", errno.errorcode[e.errno])
        # epoll readiness of a host socket.
        t = socket.create_connection(("127.0.0.1", port))
        ep = select.epoll(); ep.register(t.fileno(), select.EPOLLIN)
        print("idle epoll:", ep.poll(0.1))
        t.sendall(b"hello"); t.shutdown(socket.SHUT_WR)
        print("epoll after echo:", [ev & select.EPOLLIN for _, ev in ep.poll(30)])
        print("read:", t.recv(10))
        # Urgent data is the host's: the echo server sees it inline; here, recv(MSG_OOB) with none pending is EINVAL.
        try:
            t.recv(1, socket.MSG_OOB)
        except OSError as e:
            print("recv MSG_OOB:", errno.errorcode[e.errno])
        # UDP: allowed destination, refused destination.
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        print("udp sendto allowed:", u.sendto(b"dgram", ("127.0.0.1", udpport)))
        print("udp reply:", u.recvfrom(100)[0])
        try:
            u.sendto(b"dgram", ("127.0.0.1", 9))
        except OSError as e:
            print("udp sendto refused:", errno.errorcode[e.errno])
        # The fd the program holds is its own, not the host's.
        print("fd is small:", t.fileno() < 64, os.readlink("/proc/self/fd/%d" % t.fileno()).startswith("socket:["))
        """;

    [TestMethod]
    [DynamicData(nameof(Sandboxes.Platforms), typeof(Sandboxes))]
    public async Task HostSocketsBehaveAsLinuxsNonBlockingEpollOptionsAndUdp(string platform)
    {
        using var host = new TcpListener(IPAddress.Loopback, 0);
        host.Start();
        int port = ((IPEndPoint)host.LocalEndpoint).Port;
        using var udp = new UdpClient(new IPEndPoint(IPAddress.Loopback, 0));
        int udpPort = ((IPEndPoint)udp.Client.LocalEndPoint!).Port;
        using var stop = new CancellationTokenSource();
        var echo = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                var client = await host.AcceptTcpClientAsync(stop.Token);
                _ = Task.Run(async () =>
                {
                    using (client)
                    {
                        var stream = client.GetStream();
                        await stream.CopyToAsync(stream);
                        client.Client.Shutdown(SocketShutdown.Send);
                    }
                });
            }
        });
        var udpEcho = Task.Run(async () =>
        {
            var got = await udp.ReceiveAsync(stop.Token);
            await udp.SendAsync(got.Buffer, got.RemoteEndPoint, stop.Token);
        });

        var run = await Sandboxes.Run(platform, Python(), ["-c", Behaviour, port.ToString(), udpPort.ToString()], o =>
        {
            o.Network = NetworkMode.Host;
            o.AllowConnect.Add($"127.0.0.1/32:{port}");
            o.AllowConnect.Add($"127.0.0.1/32:{udpPort}");
        });
        stop.Cancel();
        Assert.AreEqual(
            "nonblocking connect: True\nSO_ERROR: 0\nechoed back: 100000\nTCP_NODELAY: None True\nSO_BINDTODEVICE: EPERM\n"
            + "idle epoll: []\nepoll after echo: [1]\nread: b'hello'\nrecv MSG_OOB: EINVAL\nudp sendto allowed: 5\nudp reply: b'dgram'\n"
            + "udp sendto refused: EACCES\nfd is small: True True\n",
            run.Text,
            run.Error);
        Assert.AreEqual(0, run.Status, run.Error);
    }
}
