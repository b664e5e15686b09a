using System.Net;
using System.Net.Sockets;

namespace AppKernel.Integration.Tests;

/// <summary>
/// Programs that talk over sockets inside the sandbox (network mode none: the Sentry's own Unix
/// sockets and loopback stack), and the proof that nothing reaches the host's network. The C
/// fixtures (unixsock, scmrights, tcploop, udploop) run in <see cref="FixtureTests"/>.
/// </summary>
[TestClass]
public sealed class NetworkTests
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

    private const string SocketpairAndAsyncio = """
        import socket, asyncio
        a, b = socket.socketpair()
        a.sendall(b"ping")
        print("socketpair:", b.recv(10))
        async def handle(r, w):
            data = await r.read(100)
            w.write(data.upper())
            await w.drain()
            w.close()
        async def main():
            for host in ("127.0.0.1", "::1"):
                srv = await asyncio.start_server(handle, host, 0)
                port = srv.sockets[0].getsockname()[1]
                r, w = await asyncio.open_connection(host, port)
                w.write(b"hello asyncio")
                await w.drain()
                print(host, "echo:", await r.read(100))
                w.close()
                srv.close()
                await srv.wait_closed()
        asyncio.run(main())
        """;

    [TestMethod]
    [DynamicData(nameof(Sandboxes.Platforms), typeof(Sandboxes))]
    public async Task PythonSocketpairAndAsyncioEchoOverLoopback(string platform)
    {
        var run = await Sandboxes.Run(platform, Python(), ["-c", SocketpairAndAsyncio]);
        Assert.AreEqual("socketpair: b'ping'\n127.0.0.1 echo: b'HELLO ASYNCIO'\n::1 echo: b'HELLO ASYNCIO'\n", run.Text, run.Error);
        Assert.AreEqual(0, run.Status, run.Error);
    }

    [TestMethod]
    [DynamicData(nameof(Sandboxes.Platforms), typeof(Sandboxes))]
    public async Task PythonHttpServerServesAFileToUrllibInOneShell(string platform)
    {
        // A fixed port is fine inside the sandbox: its loopback is its own.
        string python = Python();
        string script = $$"""
            mkdir -p /tmp/www && echo 'served inside the sandbox' > /tmp/www/index.txt && cd /tmp/www
            {{python}} -m http.server --bind 127.0.0.1 8123 >/dev/null 2>&1 &
            server=$!
            {{python}} -c '
            import urllib.request, time
            for i in range(200):
                try:
                    print(urllib.request.urlopen("http://127.0.0.1:8123/index.txt").read().decode(), end="")
                    break
                except OSError:
                    time.sleep(0.05)
            '
            kill $server
            wait $server 2>/dev/null
            echo done
            """;
        var run = await Sandboxes.Run(platform, "/bin/sh", ["-c", script]);
        Assert.AreEqual("served inside the sandbox\ndone\n", run.Text, run.Error);
        Assert.AreEqual(0, run.Status, run.Error);
    }

    private const string ReachOut = """
        import socket, sys, errno
        port = int(sys.argv[1])
        s = socket.socket()
        print("host listener:", errno.errorcode[s.connect_ex(("127.0.0.1", port))])
        s = socket.socket()
        print("elsewhere:", errno.errorcode[s.connect_ex(("192.0.2.1", 80))])
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            u.sendto(b"x", ("192.0.2.1", 53))
        except OSError as e:
            print("udp elsewhere:", errno.errorcode[e.errno])
        """;

    [TestMethod]
    [DynamicData(nameof(Sandboxes.Platforms), typeof(Sandboxes))]
    public async Task NetworkNoneDoesNotReachTheHost(string platform)
    {
        // A listener on the host's loopback: the sandbox's 127.0.0.1 is not the host's, so the
        // connect is refused; any other address is unreachable.
        using var host = new TcpListener(IPAddress.Loopback, 0);
        host.Start();
        int port = ((IPEndPoint)host.LocalEndpoint).Port;
        var run = await Sandboxes.Run(platform, Python(), ["-c", ReachOut, port.ToString()]);
        Assert.AreEqual("host listener: ECONNREFUSED\nelsewhere: ENETUNREACH\nudp elsewhere: ENETUNREACH\n", run.Text, run.Error);
        Assert.AreEqual(0, run.Status, run.Error);
        Assert.IsFalse(host.Pending(), "a connection reached the host");
    }

    private const string ProcNet = """
        import socket, os
        l = socket.socket(); l.bind(("127.0.0.1", 8080)); l.listen()
        u = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); u.bind(("::1", 5353))
        x = socket.socket(socket.AF_UNIX); x.bind("/tmp/x.sock"); x.listen()
        tcp = open("/proc/net/tcp").read().splitlines()
        print([" ".join(line.split()[1:4]) for line in tcp[1:]])
        udp6 = open("/proc/net/udp6").read().splitlines()
        print([" ".join(line.split()[1:4]) for line in udp6[1:]])
        unix = open("/proc/net/unix").read().splitlines()
        print([" ".join(line.split()[3:6] + line.split()[7:]) for line in unix[1:]])
        print(os.readlink("/proc/net"), socket.if_nameindex())
        """;

    [TestMethod]
    [DynamicData(nameof(Sandboxes.Platforms), typeof(Sandboxes))]
    public async Task ProcNetShowsTheSandboxStack(string platform)
    {
        var run = await Sandboxes.Run(platform, Python(), ["-c", ProcNet]);
        Assert.AreEqual(
            "['0100007F:1F90 00000000:0000 0A']\n" +
            "['00000000000000000000000001000000:14E9 00000000000000000000000000000000:0000 07']\n" +
            "['00010000 0001 01 /tmp/x.sock']\n" +
            "self/net [(1, 'lo')]\n",
            run.Text,
            run.Error);
        Assert.AreEqual(0, run.Status, run.Error);
    }
}
