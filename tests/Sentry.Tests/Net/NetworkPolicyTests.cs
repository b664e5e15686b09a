using System.Buffers.Binary;
using System.Net;
using AppKernel.Sentry.Net;

namespace AppKernel.Sentry.Tests.Net;

[TestClass]
public sealed class NetworkPolicyTests
{
    private static byte[] Inet(string ip, int port)
    {
        var address = IPAddress.Parse(ip);
        byte[] bytes;
        if (address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork)
        {
            bytes = new byte[16];
            BinaryPrimitives.WriteUInt16LittleEndian(bytes, 2);
            address.GetAddressBytes().CopyTo(bytes, 4);
        }
        else
        {
            bytes = new byte[28];
            BinaryPrimitives.WriteUInt16LittleEndian(bytes, 10);
            address.GetAddressBytes().CopyTo(bytes, 8);
        }

        BinaryPrimitives.WriteUInt16BigEndian(bytes.AsSpan(2), (ushort)port);
        return bytes;
    }

    [TestMethod]
    public void RulesMatchNetworksAndPortsOfBothFamilies()
    {
        var policy = new NetworkPolicy(["10.0.0.0/8:443", "127.0.0.1/32", "[::1]/128:8080", "fd00::/8", "::ffff:192.168.0.0/112"], [8000]);
        Assert.IsTrue(policy.MayConnect(IPAddress.Parse("10.1.2.3"), 443));
        Assert.IsFalse(policy.MayConnect(IPAddress.Parse("10.1.2.3"), 80));
        Assert.IsFalse(policy.MayConnect(IPAddress.Parse("11.0.0.1"), 443));
        Assert.IsTrue(policy.MayConnect(IPAddress.Loopback, 1));
        Assert.IsTrue(policy.MayConnect(IPAddress.IPv6Loopback, 8080));
        Assert.IsFalse(policy.MayConnect(IPAddress.IPv6Loopback, 8081));
        Assert.IsTrue(policy.MayConnect(IPAddress.Parse("fd12::1"), 22));
        Assert.IsTrue(policy.MayConnect(IPAddress.Parse("192.168.7.7"), 22), "an IPv4-mapped rule matches IPv4");
        Assert.IsTrue(policy.MayBind(0));
        Assert.IsTrue(policy.MayBind(8000));
        Assert.IsFalse(policy.MayBind(8001));
        Assert.IsFalse(policy.MayListen(0));
        Assert.IsTrue(policy.MayListen(8000));
    }

    [TestMethod]
    public void DestinationsAreReadAsLinuxReadsThem()
    {
        Assert.IsTrue(NetworkPolicy.TryParse(Inet("::ffff:10.0.0.1", 80), 10, out var ip, out int port, out _));
        Assert.AreEqual(IPAddress.Parse("10.0.0.1"), ip, "IPv4-mapped is IPv4");
        Assert.AreEqual(80, port);
        Assert.IsTrue(NetworkPolicy.TryParse(Inet("0.0.0.0", 5), 2, out ip, out _, out _));
        Assert.AreEqual(IPAddress.Loopback, ip, "the unspecified address is the local host");
        Assert.IsTrue(NetworkPolicy.TryParse(Inet("::", 5), 10, out ip, out _, out _));
        Assert.AreEqual(IPAddress.IPv6Loopback, ip);
        Assert.IsFalse(NetworkPolicy.TryParse(Inet("::1", 5), 2, out _, out _, out var error));
        Assert.AreEqual(Errno.EAFNOSUPPORT, error);
        Assert.IsFalse(NetworkPolicy.TryParse(Inet("127.0.0.1", 5).AsSpan(0, 8), 2, out _, out _, out error));
        Assert.AreEqual(Errno.EINVAL, error);
    }
}
