using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using AppKernel.Sentry.Net;
using AppKernel.Vfs;
using static AppKernel.Sentry.Net.SocketConstants;

namespace AppKernel.Sentry.Fs.Proc;

// /proc/PID/net (and /proc/net, a link to self/net): the sandbox's own stack, in Linux's formats.
internal sealed partial class ProcFileSystem
{
    private ProcDirectory NetDirectory(string prefix, int uid)
    {
        ProcFile File(string name, Func<string> text) => new(this, Ino(prefix + "/net/" + name), ProcFile.Text(text), uid: uid);
        IEnumerable<(string, Func<IInode>)> Entries()
        {
            yield return ("tcp", () => File("tcp", () => Inet(SOCK_STREAM, v6: false)));
            yield return ("tcp6", () => File("tcp6", () => Inet(SOCK_STREAM, v6: true)));
            yield return ("udp", () => File("udp", () => Inet(SOCK_DGRAM, v6: false)));
            yield return ("udp6", () => File("udp6", () => Inet(SOCK_DGRAM, v6: true)));
            yield return ("unix", () => File("unix", UnixSockets));
            yield return ("dev", () => File("dev", () =>
                "Inter-|   Receive                                                |  Transmit\n" +
                " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n" +
                "    lo:       0       0    0    0    0     0          0         0        0       0    0    0    0     0       0          0\n"));
        }

        return new ProcDirectory(this, Ino(prefix + "/net"), Entries, uid);
    }

    private string Inet(int type, bool v6)
    {
        var text = new StringBuilder();
        string header = v6
            ? "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
            : type == SOCK_STREAM
                ? "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode                                                     \n"
                : "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops             \n";
        text.Append(header);
        int line = 0;
        foreach (var (socket, _) in kernel.Network.Loopback.Bound())
        {
            if (socket.Type != type || (socket.Family == AF_INET6) != v6)
            {
                continue;
            }

            var local = socket.LocalAddress is { } l ? LoopbackStack.Parse(socket.Family, l) : default;
            byte[]? remoteBytes = socket switch
            {
                StreamSocket s => s.RemoteAddress,
                DatagramSocket d => d.RemoteAddress,
                _ => null,
            };
            var remote = remoteBytes is null ? new LoopbackStack.Endpoint(socket.Family == AF_INET ? (UInt128)0xFFFF << 32 : 0, 0) : LoopbackStack.Parse(socket.Family, remoteBytes);
            int state = socket is StreamSocket stream ? stream.TcpState : remoteBytes is not null ? 0x01 : 0x07;
            var attributes = socket.Inode!.GetAttributes();
            text.Append(CultureInfo.InvariantCulture, $"{line++,4}: {Hex(local, v6)}:{local.Port:X4} {Hex(remote, v6)}:{remote.Port:X4} {state:X2} {socket.OutputQueued:X8}:{socket.InputQueued:X8} 00:00000000 00000000 {attributes.Uid,5} {0,8} {attributes.Ino}");
            text.Append(type == SOCK_STREAM ? " 1 0000000000000000 100 0 0 10 0\n" : " 2 0000000000000000 0\n");
        }

        return text.ToString();
    }

    private static string Hex(LoopbackStack.Endpoint endpoint, bool v6)
    {
        // Linux prints the address's 32-bit words as native (little-endian) integers.
        Span<byte> bytes = stackalloc byte[16];
        BinaryPrimitives.WriteUInt128BigEndian(bytes, endpoint.Address);
        if (!v6)
        {
            return BinaryPrimitives.ReadUInt32LittleEndian(bytes[12..]).ToString("X8", CultureInfo.InvariantCulture);
        }

        var text = new StringBuilder(32);
        for (int i = 0; i < 16; i += 4)
        {
            text.Append(BinaryPrimitives.ReadUInt32LittleEndian(bytes[i..]).ToString("X8", CultureInfo.InvariantCulture));
        }

        return text.ToString();
    }

    private string UnixSockets()
    {
        var text = new StringBuilder("Num       RefCount Protocol Flags    Type St Inode Path\n");
        foreach (var socket in kernel.Network.Unix.Named())
        {
            bool connected = socket is StreamSocket { RemoteAddress: not null } || socket is DatagramSocket { RemoteAddress: not null };
            string path = socket.LocalAddress is { Length: > 2 } address
                ? address[2] == 0 ? "@" + Encoding.Latin1.GetString(address.AsSpan(3)) : Encoding.UTF8.GetString(address.AsSpan(2)).TrimEnd('\0')
                : "";
            text.Append(CultureInfo.InvariantCulture,
                $"0000000000000000: 00000002 00000000 {(socket.IsListening ? 0x10000 : 0):X8} {socket.Type:X4} {(connected ? 3 : 1):X2} {socket.Id} {path}\n");
        }

        return text.ToString();
    }
}
