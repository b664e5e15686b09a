using AppKernel.Gofer.Native;

namespace AppKernel.Gofer.Protocol;

/// <summary>
/// Sending and receiving whole messages on an AF_UNIX SOCK_SEQPACKET socket, with at most one
/// descriptor riding along (SCM_RIGHTS). Both sides use it.
/// </summary>
internal static unsafe class SeqPacket
{
    /// <summary>Creates a connected pair of close-on-exec SOCK_SEQPACKET sockets.</summary>
    /// <returns>0, or the errno.</returns>
    public static int CreatePair(out int first, out int second)
    {
        int* fds = stackalloc int[2];
        if (Host.SocketPair(Host.AF_UNIX, Host.SOCK_SEQPACKET | Host.SOCK_CLOEXEC, 0, fds) != 0)
        {
            first = second = -1;
            return Host.Errno;
        }

        first = fds[0];
        second = fds[1];
        return 0;
    }

    /// <summary>Sends <paramref name="message"/> whole, with <paramref name="passFd"/> attached when it is not -1.</summary>
    /// <returns>0, or the errno (EPIPE/ECONNRESET when the peer is gone).</returns>
    public static int Send(int socket, ReadOnlySpan<byte> message, int passFd = -1)
    {
        byte* control = stackalloc byte[Host.CmsgSpaceOneFd];
        fixed (byte* data = message)
        {
            Host.IoVec iov = new() { Base = data, Length = (nuint)message.Length };
            Host.MsgHdr header = new() { Iov = &iov, IovLength = 1 };
            if (passFd >= 0)
            {
                new Span<byte>(control, Host.CmsgSpaceOneFd).Clear();
                var cmsg = (Host.CmsgHdr*)control;
                cmsg->Length = Host.CmsgLenOneFd;
                cmsg->Level = Host.SOL_SOCKET;
                cmsg->Type = Host.SCM_RIGHTS;
                *(int*)(control + sizeof(Host.CmsgHdr)) = passFd;
                header.Control = control;
                header.ControlLength = Host.CmsgSpaceOneFd;
            }

            while (true)
            {
                nint sent = Host.SendMsg(socket, &header, Host.MSG_NOSIGNAL);
                if (sent >= 0)
                {
                    return sent == message.Length ? 0 : Host.EAGAIN;
                }

                int errno = Host.Errno;
                if (errno != Host.EINTR)
                {
                    return errno;
                }
            }
        }
    }

    /// <summary>
    /// Receives one message into <paramref name="buffer"/>. A descriptor that came with it is
    /// returned in <paramref name="receivedFd"/> (close-on-exec), else -1.
    /// </summary>
    /// <returns>The message length; 0 when the peer closed; minus the errno on failure.</returns>
    /// <exception cref="ProtocolException">The message or its ancillary data did not fit.</exception>
    public static int Receive(int socket, Span<byte> buffer, out int receivedFd)
    {
        receivedFd = -1;
        const int ControlSize = 64;
        byte* control = stackalloc byte[ControlSize];
        fixed (byte* data = buffer)
        {
            Host.IoVec iov = new() { Base = data, Length = (nuint)buffer.Length };
            Host.MsgHdr header = new() { Iov = &iov, IovLength = 1, Control = control, ControlLength = ControlSize };
            nint received;
            while (true)
            {
                received = Host.RecvMsg(socket, &header, Host.MSG_CMSG_CLOEXEC);
                if (received >= 0)
                {
                    break;
                }

                int errno = Host.Errno;
                if (errno != Host.EINTR)
                {
                    return -errno;
                }

                header.ControlLength = ControlSize;
                header.Flags = 0;
            }

            // Collect every descriptor that came, so that none leaks even when the message is bad.
            int extra = 0;
            if (header.ControlLength >= (nuint)sizeof(Host.CmsgHdr))
            {
                byte* cursor = control;
                byte* end = control + (int)header.ControlLength;
                while (cursor + sizeof(Host.CmsgHdr) <= end)
                {
                    var cmsg = (Host.CmsgHdr*)cursor;
                    if (cmsg->Length < (nuint)sizeof(Host.CmsgHdr) || cursor + (int)cmsg->Length > end)
                    {
                        break;
                    }

                    if (cmsg->Level == Host.SOL_SOCKET && cmsg->Type == Host.SCM_RIGHTS)
                    {
                        int count = ((int)cmsg->Length - sizeof(Host.CmsgHdr)) / sizeof(int);
                        int* fds = (int*)(cursor + sizeof(Host.CmsgHdr));
                        for (int i = 0; i < count; i++)
                        {
                            if (receivedFd < 0)
                            {
                                receivedFd = fds[i];
                            }
                            else
                            {
                                Host.Close(fds[i]);
                                extra++;
                            }
                        }
                    }

                    cursor += ((int)cmsg->Length + 7) & ~7;
                }
            }

            if ((header.Flags & (Host.MSG_TRUNC | Host.MSG_CTRUNC)) != 0 || extra > 0)
            {
                Host.CloseQuietly(receivedFd);
                receivedFd = -1;
                throw new ProtocolException("message or its descriptors did not fit the protocol's limits");
            }

            return (int)received;
        }
    }
}
