using System.Buffers.Binary;
using System.Text;
using AppKernel.Syscalls;
using static AppKernel.Sentry.Net.SocketConstants;

namespace AppKernel.Sentry.Net;

/// <summary>
/// The sandbox's one network device, <c>lo</c> (index 1, 127.0.0.1/8, ::1, MTU 65536), as the
/// interface ioctls (netdevice(7)) report it on any socket.
/// </summary>
internal static class NetDevices
{
    public const string LoopbackName = "lo";
    public const int LoopbackIndex = 1;
    public const int LoopbackMtu = 65536;
    public const short IFF_UP = 0x1, IFF_LOOPBACK = 0x8, IFF_RUNNING = 0x40;

    private const int IfReqSize = 40;
    private const int NameSize = 16;

    public static long Ioctl(uint request, ulong argument, ISyscallContext context)
    {
        var memory = context.Memory;
        switch (request)
        {
            case SIOCGIFCONF:
            {
                // struct ifconf { int ifc_len; char *ifc_buf; }: one entry per IPv4 address.
                int length = memory.ReadValue<int>(argument);
                ulong buffer = memory.ReadValue<ulong>(argument + 8);
                if (buffer == 0)
                {
                    memory.WriteValue(argument, IfReqSize);
                    return 0;
                }

                int written = 0;
                if (length >= IfReqSize)
                {
                    Span<byte> request0 = stackalloc byte[IfReqSize];
                    request0.Clear();
                    Encoding.ASCII.GetBytes(LoopbackName, request0);
                    WriteInet(request0[NameSize..], [127, 0, 0, 1]);
                    memory.Write(buffer, request0);
                    written = IfReqSize;
                }

                memory.WriteValue(argument, written);
                return 0;
            }

            case SIOCGIFNAME:
            {
                Span<byte> ifreq = stackalloc byte[IfReqSize];
                memory.Read(argument, ifreq);
                if (BinaryPrimitives.ReadInt32LittleEndian(ifreq[NameSize..]) != LoopbackIndex)
                {
                    throw ErrnoException.Of(Errno.ENODEV);
                }

                ifreq[..NameSize].Clear();
                Encoding.ASCII.GetBytes(LoopbackName, ifreq);
                memory.Write(argument, ifreq[..NameSize]);
                return 0;
            }

            case SIOCGIFFLAGS or SIOCGIFADDR or SIOCGIFNETMASK or SIOCGIFINDEX or SIOCGIFMTU or SIOCGIFHWADDR:
            {
                Span<byte> ifreq = stackalloc byte[IfReqSize];
                memory.Read(argument, ifreq);
                int end = ifreq[..NameSize].IndexOf((byte)0);
                string name = Encoding.ASCII.GetString(ifreq[..(end < 0 ? NameSize : end)]);
                if (name != LoopbackName)
                {
                    throw ErrnoException.Of(Errno.ENODEV);
                }

                var value = ifreq[NameSize..];
                value.Clear();
                switch (request)
                {
                    case SIOCGIFFLAGS:
                        BinaryPrimitives.WriteInt16LittleEndian(value, IFF_UP | IFF_LOOPBACK | IFF_RUNNING);
                        break;
                    case SIOCGIFADDR:
                        WriteInet(value, [127, 0, 0, 1]);
                        break;
                    case SIOCGIFNETMASK:
                        WriteInet(value, [255, 0, 0, 0]);
                        break;
                    case SIOCGIFINDEX:
                        BinaryPrimitives.WriteInt32LittleEndian(value, LoopbackIndex);
                        break;
                    case SIOCGIFMTU:
                        BinaryPrimitives.WriteInt32LittleEndian(value, LoopbackMtu);
                        break;
                    case SIOCGIFHWADDR:
                        BinaryPrimitives.WriteUInt16LittleEndian(value, 772); // ARPHRD_LOOPBACK, all-zero address
                        break;
                }

                memory.Write(argument + NameSize, value);
                return 0;
            }
        }

        throw ErrnoException.Of(Errno.ENOTTY);
    }

    private static void WriteInet(Span<byte> destination, ReadOnlySpan<byte> address)
    {
        BinaryPrimitives.WriteUInt16LittleEndian(destination, AF_INET);
        address.CopyTo(destination[4..]);
    }
}
