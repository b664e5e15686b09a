namespace AppKernel.Integration.Tests;

/// <summary>
/// `ip` from iproute2 reads the sandbox's routing table over NETLINK_ROUTE and sees what a
/// network namespace with only lo up shows on Linux (the expected text is Linux's, taken from
/// `unshare -n` with lo up).
/// </summary>
[TestClass]
public sealed class RouteTableTests
{
    private const string Ip = "/usr/sbin/ip";

    [TestMethod]
    [DynamicData(nameof(Sandboxes.Platforms), typeof(Sandboxes))]
    public async Task IpRouteShowsTheLoopbackNamespacesTable(string platform)
    {
        if (!File.Exists(Ip))
        {
            Assert.Inconclusive("iproute2 is not installed");
        }

        const string script =
            "ip route show table all; echo main:; ip route; ip -6 route; echo get:; ip route get 127.0.0.1; ip -6 route get ::1; " +
            "ip route get 192.0.2.1 2>&1; echo status $?; echo neigh:; ip neigh";
        var run = await Sandboxes.Run(platform, "/bin/sh", ["-c", script]);
        const string expected = """
            local 127.0.0.0/8 dev lo table local proto kernel scope host src 127.0.0.1 
            local 127.0.0.1 dev lo table local proto kernel scope host src 127.0.0.1 
            broadcast 127.255.255.255 dev lo table local proto kernel scope link src 127.0.0.1 
            local ::1 dev lo table local proto kernel metric 0 pref medium
            main:
            get:
            local 127.0.0.1 dev lo src 127.0.0.1 uid 0 
                cache <local> 
            local ::1 from :: dev lo table local proto kernel src ::1 metric 0 pref medium
            RTNETLINK answers: Network is unreachable
            status 2
            neigh:

            """;
        Assert.AreEqual(expected.ReplaceLineEndings("\n"), run.Text, run.Error);
        Assert.AreEqual(0, run.Status, run.Error);
    }
}
