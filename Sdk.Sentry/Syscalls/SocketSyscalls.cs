using System.Buffers;
using System.Buffers.Binary;
using AppKernel.Networking;
using AppKernel.Sentry.Abi;
using AppKernel.Sentry.Kernel;
using AppKernel.Sentry.Net;
using AppKernel.Sentry.Vfs;
using AppKernel.Syscalls;
using AppKernel.Vfs;
using static AppKernel.Sentry.Net.SocketConstants;

namespace AppKernel.Sentry.Syscalls;

/// <summary>
/// The socket calls (socket(2) and friends) over <see cref="ISocket"/>: argument checks and
/// copies, blocking (interruptible; SO_RCVTIMEO/SO_SNDTIMEO give EAGAIN when they pass and
/// EINTR rather than a restart when a signal comes, as Linux's sock_intr_errno), MSG_DONTWAIT,
/// MSG_WAITALL, SIGPIPE unless MSG_NOSIGNAL, and ancillary data (SCM_RIGHTS, SCM_CREDENTIALS).
/// read, write, readv and writev on a socket come here too.
/// </summary>
internal static class SocketSyscalls
{
    /// <summary>sizeof(struct sockaddr_storage): longer addresses are EINVAL.</summary>
    private const int MaxAddress = 128;
    private const int IovMax = 1024;
    private const int Chunk = 256 * 1024;
    private const int MsgHdrSize = 56;
    private const int MmsgHdrSize = 64;
    private const int CmsgHeader = 16;

    [Syscall(41, SupportLevel.Partial, Note = "AF_UNIX stream/dgram/seqpacket; AF_INET/AF_INET6 TCP and UDP on the sandbox's own loopback (network mode none) or as policy-checked host sockets (network mode host); AF_NETLINK NETLINK_ROUTE answering link/address dumps of lo; raw and packet sockets EPERM, ping sockets EACCES, other netlink protocols EPROTONOSUPPORT, other families EAFNOSUPPORT")]
    public static SyscallResult Socket(ISyscallContext c)
    {
        var t = c.Task();
        var a = c.Arguments;
        int family = (int)a.A0;
        int raw = (int)a.A1;
        int type = raw & ~(SOCK_NONBLOCK | SOCK_CLOEXEC);
        if ((type & ~SOCK_TYPE_MASK) != 0)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        var socket = t.Kernel.Network.Create(family, type, (int)a.A2);
        return SyscallResult.Ok(Install(t, socket, raw));
    }

    [Syscall(53)]
    public static SyscallResult Socketpair(ISyscallContext c)
    {
        var t = c.Task();
        var a = c.Arguments;
        int family = (int)a.A0;
        int raw = (int)a.A1;
        int type = raw & ~(SOCK_NONBLOCK | SOCK_CLOEXEC);
        if ((type & ~SOCK_TYPE_MASK) != 0)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        var first = t.Kernel.Network.Create(family, type, (int)a.A2);
        var second = t.Kernel.Network.Create(family, type, (int)a.A2);
        if (first is StreamSocket { Family: AF_UNIX } s1 && second is StreamSocket s2)
        {
            StreamSocket.Pair(s1, s2);
        }
        else if (first is DatagramSocket { Family: AF_UNIX } d1 && second is DatagramSocket d2)
        {
            DatagramSocket.Pair(d1, d2);
        }
        else
        {
            // Other families cannot pair (EOPNOTSUPP); as on Linux, the fd numbers were already
            // reserved and written out before the family said so.
            int f1 = Install(t, first, raw), f2 = Install(t, second, raw);
            t.Fds.Close(f1);
            t.Fds.Close(f2);
            Span<int> reserved = [f1, f2];
            t.Mm.Write(a.A3, System.Runtime.InteropServices.MemoryMarshal.AsBytes(reserved));
            return SyscallResult.Error(Errno.EOPNOTSUPP);
        }

        int fd1 = -1, fd2 = -1;
        try
        {
            fd1 = Install(t, first, raw);
            fd2 = Install(t, second, raw);
            Span<int> fds = [fd1, fd2];
            t.Mm.Write(a.A3, System.Runtime.InteropServices.MemoryMarshal.AsBytes(fds));
            return SyscallResult.Zero;
        }
        catch
        {
            if (fd1 >= 0)
            {
                t.Fds.Close(fd1);
            }

            if (fd2 >= 0)
            {
                t.Fds.Close(fd2);
            }
            else
            {
                second.Release();
            }

            throw;
        }
    }

    private static int Install(KernelTask t, ISocket socket, int flags)
    {
        ulong id = socket.Inode?.GetAttributes().Ino ?? 0;
        var status = OpenFlags.ReadWrite | ((flags & SOCK_NONBLOCK) != 0 ? OpenFlags.NonBlocking : 0);
        var description = new FileDescription(socket, null, status, $"socket:[{id}]");
        if (socket is SentrySocket own)
        {
            own.Description = description;
        }

        return AnonymousFiles.Install(t, description, (flags & SOCK_CLOEXEC) != 0);
    }

    /// <summary>The socket behind an fd: EBADF, or ENOTSOCK for other files.</summary>
    private static (FileDescription File, ISocket Socket) Get(KernelTask t, ulong fd)
    {
        var file = t.Fds.Get((int)fd);
        if (file.IsPathOnly)
        {
            throw ErrnoException.Of(Errno.EBADF);
        }

        return file.Operations is ISocket socket ? (file, socket) : throw ErrnoException.Of(Errno.ENOTSOCK);
    }

    private static byte[] ReadAddress(KernelTask t, ulong address, ulong length)
    {
        if ((int)length < 0 || (long)length > MaxAddress)
        {
            throw ErrnoException.Of(Errno.EINVAL);
        }

        var bytes = new byte[(int)length];
        if (bytes.Length > 0)
        {
            t.Mm.Read(address, bytes);
        }

        return bytes;
    }

    /// <summary>Writes an address back (getsockname, accept, recvfrom): as much as the caller's length allows, then the full length.</summary>
    private static void WriteAddress(KernelTask t, ulong address, ulong lengthPointer, ReadOnlySpan<byte> value, int fullLength)
    {
        if (address == 0 || lengthPointer == 0)
        {
            return;
        }

        int room = t.Mm.ReadValue<int>(lengthPointer);
        if (room < 0)
        {
            throw ErrnoException.Of(Errno.EINVAL);
        }

        int n = Math.Min(Math.Min(room, fullLength), value.Length);
        if (n > 0)
        {
            t.Mm.Write(address, value[..n]);
        }

        t.Mm.WriteValue(lengthPointer, fullLength);
    }

    [Syscall(49)]
    public static SyscallResult Bind(ISyscallContext c)
    {
        var t = c.Task();
        var a = c.Arguments;
        var (_, socket) = Get(t, a.A0);
        socket.Bind(ReadAddress(t, a.A1, a.A2));
        return SyscallResult.Zero;
    }

    [Syscall(50)]
    public static SyscallResult Listen(ISyscallContext c)
    {
        var t = c.Task();
        var (_, socket) = Get(t, c.Arguments.A0);
        socket.Listen((int)c.Arguments.A1);
        return SyscallResult.Zero;
    }

    [Syscall(43)]
    public static SyscallResult Accept(ISyscallContext c) => AcceptCommon(c, 0);

    [Syscall(288)]
    public static SyscallResult Accept4(ISyscallContext c) => AcceptCommon(c, (int)c.Arguments.A3);

    private static SyscallResult AcceptCommon(ISyscallContext c, int flags)
    {
        var t = c.Task();
        var a = c.Arguments;
        if ((flags & ~(SOCK_NONBLOCK | SOCK_CLOEXEC)) != 0)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        var (file, socket) = Get(t, a.A0);
        if (a.A1 != 0 && a.A2 != 0 && t.Mm.ReadValue<int>(a.A2) < 0)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        long deadline = Deadline((socket as IKernelSocket)?.ReceiveTimeout ?? 0);
        ISocket accepted;
        while (true)
        {
            try
            {
                accepted = socket.Accept();
                break;
            }
            catch (ErrnoException e) when (e.Errno == Errno.EAGAIN && !file.NonBlocking)
            {
                Block(t, socket, PollEvents.In | PollEvents.ReadNormal, deadline);
            }
        }

        try
        {
            if (a.A1 != 0 && a.A2 != 0)
            {
                Span<byte> peer = stackalloc byte[MaxAddress];
                int length = accepted.GetPeerAddress(peer);
                WriteAddress(t, a.A1, a.A2, peer, length);
            }
        }
        catch
        {
            accepted.Release();
            throw;
        }

        return SyscallResult.Ok(Install(t, accepted, flags));
    }

    [Syscall(42)]
    public static SyscallResult Connect(ISyscallContext c)
    {
        var t = c.Task();
        var a = c.Arguments;
        var (file, socket) = Get(t, a.A0);
        var address = ReadAddress(t, a.A1, a.A2);
        try
        {
            if (socket is IKernelSocket own)
            {
                own.Connect(address, file.NonBlocking);
            }
            else
            {
                socket.Connect(address);
            }
        }
        catch (ErrnoException e) when (e.Errno == Errno.EINPROGRESS && !file.NonBlocking)
        {
            long deadline = Deadline((socket as IKernelSocket)?.SendTimeout ?? 0);
            Block(t, socket, PollEvents.Out | PollEvents.WriteNormal, deadline, timeoutErrno: Errno.EINPROGRESS);
            var error = new byte[4];
            socket.GetOption(SOL_SOCKET, SO_ERROR, error);
            int errno = BinaryPrimitives.ReadInt32LittleEndian(error);
            if (errno == 0)
            {
                (socket as IKernelSocket)?.ConnectCompleted(address);
            }

            return errno == 0 ? SyscallResult.Zero : SyscallResult.Error((Errno)errno);
        }

        return SyscallResult.Zero;
    }

    [Syscall(51)]
    public static SyscallResult Getsockname(ISyscallContext c) => GetName(c, peer: false);

    [Syscall(52)]
    public static SyscallResult Getpeername(ISyscallContext c) => GetName(c, peer: true);

    private static SyscallResult GetName(ISyscallContext c, bool peer)
    {
        var t = c.Task();
        var a = c.Arguments;
        var (_, socket) = Get(t, a.A0);
        int room = t.Mm.ReadValue<int>(a.A2);
        if (room < 0)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        Span<byte> address = stackalloc byte[MaxAddress];
        int length = peer ? socket.GetPeerAddress(address) : socket.GetLocalAddress(address);
        WriteAddress(t, a.A1, a.A2, address, length);
        return SyscallResult.Zero;
    }

    [Syscall(48)]
    public static SyscallResult Shutdown(ISyscallContext c)
    {
        var t = c.Task();
        var (_, socket) = Get(t, c.Arguments.A0);
        socket.Shutdown((int)c.Arguments.A1);
        return SyscallResult.Zero;
    }

    [Syscall(54, SupportLevel.Partial, Note = "SOL_SOCKET options (SO_REUSEADDR/REUSEPORT/KEEPALIVE/RCVBUF/SNDBUF/RCVTIMEO/SNDTIMEO/LINGER/PASSCRED and the read-only ones), SO_OOBINLINE, TCP_NODELAY and TCP keepalive knobs, IPV6_V6ONLY, IP_TOS/IP_TTL; others ENOPROTOOPT")]
    public static SyscallResult Setsockopt(ISyscallContext c)
    {
        var t = c.Task();
        var a = c.Arguments;
        var (_, socket) = Get(t, a.A0);
        int length = (int)a.A4;
        if (length < 0)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        var value = new byte[Math.Min(length, 256)];
        if (value.Length > 0)
        {
            t.Mm.Read(a.A3, value);
        }

        socket.SetOption((int)a.A1, (int)a.A2, value);
        return SyscallResult.Zero;
    }

    [Syscall(55, SupportLevel.Partial, Note = "see setsockopt; also SO_TYPE, SO_DOMAIN, SO_PROTOCOL, SO_ERROR, SO_ACCEPTCONN, SO_PEERCRED")]
    public static SyscallResult Getsockopt(ISyscallContext c)
    {
        var t = c.Task();
        var a = c.Arguments;
        var (_, socket) = Get(t, a.A0);
        int room = t.Mm.ReadValue<int>(a.A4);
        if (room < 0)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        Span<byte> value = stackalloc byte[256];
        int length = socket.GetOption((int)a.A1, (int)a.A2, value[..Math.Min(room, 256)]);
        if (length > 0)
        {
            t.Mm.Write(a.A3, value[..length]);
        }

        t.Mm.WriteValue(a.A4, length);
        return SyscallResult.Zero;
    }

    [Syscall(44)]
    public static SyscallResult Sendto(ISyscallContext c)
    {
        var t = c.Task();
        var a = c.Arguments;
        var (file, socket) = Get(t, a.A0);
        byte[] address = a.A4 == 0 ? [] : ReadAddress(t, a.A4, a.A5);
        LinuxIovec[] iov = [new LinuxIovec { Base = a.A1, Length = Math.Min(a.A2, (ulong)FileIo.MaxTransfer) }];
        return SyscallResult.Ok(SendWithSignal(t, file, socket, iov, address, (int)a.A3, null));
    }

    [Syscall(45)]
    public static SyscallResult Recvfrom(ISyscallContext c)
    {
        var t = c.Task();
        var a = c.Arguments;
        var (file, socket) = Get(t, a.A0);
        if (a.A4 != 0 && a.A5 != 0 && t.Mm.ReadValue<int>(a.A5) < 0)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        LinuxIovec[] iov = [new LinuxIovec { Base = a.A1, Length = Math.Min(a.A2, (ulong)FileIo.MaxTransfer) }];
        long n = Receive(t, file, socket, iov, (int)a.A3, out var sender, out var control, out _);
        control?.Release();
        if (a.A4 != 0)
        {
            WriteAddress(t, a.A4, a.A5, sender ?? [], sender?.Length ?? 0);
        }

        return SyscallResult.Ok(n);
    }

    [Syscall(46, SupportLevel.Partial, Note = "SCM_RIGHTS and SCM_CREDENTIALS on Unix sockets; other SOL_SOCKET control messages EINVAL, other levels ignored; MSG_OOB sends urgent data on TCP (its last byte is the urgent byte; SIGURG to the receiver's owner), EOPNOTSUPP on UDP and Unix sockets (Unix stream keeps Linux's pre-5.15 answer)")]
    public static SyscallResult Sendmsg(ISyscallContext c)
    {
        var t = c.Task();
        var a = c.Arguments;
        var (file, socket) = Get(t, a.A0);
        return SyscallResult.Ok(SendMessage(t, file, socket, a.A1, (int)a.A2));
    }

    [Syscall(47, SupportLevel.Partial, Note = "SCM_RIGHTS, SCM_CREDENTIALS (SO_PASSCRED), MSG_CTRUNC, MSG_CMSG_CLOEXEC; MSG_PEEK installs new fds for passed files; MSG_OOB reads TCP's urgent byte (reads stop at the mark, SO_OOBINLINE keeps it in the stream), is ignored by UDP and EOPNOTSUPP on Unix sockets; MSG_ERRQUEUE finds nothing")]
    public static SyscallResult Recvmsg(ISyscallContext c)
    {
        var t = c.Task();
        var a = c.Arguments;
        var (file, socket) = Get(t, a.A0);
        return SyscallResult.Ok(ReceiveMessage(t, file, socket, a.A1, (int)a.A2));
    }

    [Syscall(307)]
    public static SyscallResult Sendmmsg(ISyscallContext c)
    {
        var t = c.Task();
        var a = c.Arguments;
        var (file, socket) = Get(t, a.A0);
        uint count = Math.Min((uint)a.A2, IovMax);
        int sent = 0;
        for (; sent < count; sent++)
        {
            ulong entry = a.A1 + (ulong)sent * MmsgHdrSize;
            long n;
            try
            {
                n = SendMessage(t, file, socket, entry, (int)a.A3);
            }
            catch (ErrnoException) when (sent > 0)
            {
                break;
            }

            t.Mm.WriteValue(entry + MsgHdrSize, (uint)n);
        }

        return SyscallResult.Ok(sent);
    }

    [Syscall(299, SupportLevel.Partial, Note = "the timeout is checked after each datagram, as Linux does; MSG_WAITFORONE")]
    public static SyscallResult Recvmmsg(ISyscallContext c)
    {
        var t = c.Task();
        var a = c.Arguments;
        var (file, socket) = Get(t, a.A0);
        uint count = Math.Min((uint)a.A2, IovMax);
        int flags = (int)a.A3;
        long deadline = -1;
        if (a.A4 != 0)
        {
            var timeout = t.Mm.ReadValue<LinuxTimespec>(a.A4);
            if (timeout.Seconds < 0 || (ulong)timeout.Nanoseconds >= 1_000_000_000)
            {
                return SyscallResult.Error(Errno.EINVAL);
            }

            deadline = Kernel.Kernel.Now + timeout.Seconds * 1_000_000_000 + timeout.Nanoseconds;
        }

        int received = 0;
        for (; received < count; received++)
        {
            ulong entry = a.A1 + (ulong)received * MmsgHdrSize;
            long n;
            try
            {
                n = ReceiveMessage(t, file, socket, entry, flags);
            }
            catch (ErrnoException) when (received > 0)
            {
                break;
            }

            t.Mm.WriteValue(entry + MsgHdrSize, (uint)n);
            if ((flags & MSG_WAITFORONE) != 0)
            {
                flags |= MSG_DONTWAIT;
            }

            if (deadline >= 0 && Kernel.Kernel.Now >= deadline)
            {
                received++;
                break;
            }
        }

        return SyscallResult.Ok(received);
    }

    /// <summary>read/readv on a socket: recvmsg with no flags.</summary>
    public static long Read(KernelTask t, FileDescription file, LinuxIovec[] iov)
    {
        if (!file.CanRead)
        {
            throw ErrnoException.Of(Errno.EBADF);
        }

        long requested = 0;
        foreach (var v in iov)
        {
            requested += (long)v.Length;
        }

        if (requested == 0)
        {
            // sock_read_iter: a zero-length read returns at once.
            return 0;
        }

        long n = Receive(t, file, (ISocket)file.Operations, iov, 0, out _, out var control, out _);
        control?.Release();
        return n;
    }

    /// <summary>write/writev on a socket: sendmsg with no flags (SIGPIPE on a broken connection).</summary>
    public static long Write(KernelTask t, FileDescription file, LinuxIovec[] iov) =>
        SendWithSignal(t, file, (ISocket)file.Operations, iov, [], 0, null);

    private static long SendMessage(KernelTask t, FileDescription file, ISocket socket, ulong header, int flags)
    {
        Span<byte> raw = stackalloc byte[MsgHdrSize];
        t.Mm.Read(header, raw);
        ulong name = BinaryPrimitives.ReadUInt64LittleEndian(raw);
        uint nameLength = BinaryPrimitives.ReadUInt32LittleEndian(raw[8..]);
        ulong iovAddress = BinaryPrimitives.ReadUInt64LittleEndian(raw[16..]);
        ulong iovCount = BinaryPrimitives.ReadUInt64LittleEndian(raw[24..]);
        ulong controlAddress = BinaryPrimitives.ReadUInt64LittleEndian(raw[32..]);
        ulong controlLength = BinaryPrimitives.ReadUInt64LittleEndian(raw[40..]);
        var iov = ReadIovecs(t, iovAddress, iovCount);
        byte[] address = name == 0 ? [] : ReadAddress(t, name, nameLength);
        var control = ParseControl(t, socket, controlAddress, controlLength);

        return SendWithSignal(t, file, socket, iov, address, flags, control);
    }

    private static long ReceiveMessage(KernelTask t, FileDescription file, ISocket socket, ulong header, int flags)
    {
        Span<byte> raw = stackalloc byte[MsgHdrSize];
        t.Mm.Read(header, raw);
        ulong name = BinaryPrimitives.ReadUInt64LittleEndian(raw);
        int nameLength = BinaryPrimitives.ReadInt32LittleEndian(raw[8..]);
        ulong iovAddress = BinaryPrimitives.ReadUInt64LittleEndian(raw[16..]);
        ulong iovCount = BinaryPrimitives.ReadUInt64LittleEndian(raw[24..]);
        ulong controlAddress = BinaryPrimitives.ReadUInt64LittleEndian(raw[32..]);
        ulong controlLength = BinaryPrimitives.ReadUInt64LittleEndian(raw[40..]);
        if (name != 0 && nameLength < 0)
        {
            throw ErrnoException.Of(Errno.EINVAL);
        }

        var iov = ReadIovecs(t, iovAddress, iovCount);
        long n = Receive(t, file, socket, iov, flags, out var sender, out var control, out int messageFlags);
        int used = 0;
        try
        {
            used = WriteControl(t, socket, control, controlAddress, controlLength, flags, ref messageFlags);
        }
        finally
        {
            control?.Release();
        }

        int senderLength = sender?.Length ?? 0;
        if (name != 0 && senderLength > 0)
        {
            t.Mm.Write(name, sender.AsSpan(0, Math.Min(senderLength, nameLength)));
        }

        t.Mm.WriteValue(header + 8, name != 0 ? senderLength : 0);
        t.Mm.WriteValue(header + 40, (ulong)used);
        t.Mm.WriteValue(header + 48, messageFlags);
        return n;
    }

    private static LinuxIovec[] ReadIovecs(KernelTask t, ulong address, ulong count)
    {
        if (count > IovMax)
        {
            throw ErrnoException.Of(Errno.EMSGSIZE);
        }

        var vectors = new LinuxIovec[count];
        long total = 0;
        for (int i = 0; i < vectors.Length; i++)
        {
            vectors[i] = t.Mm.ReadValue<LinuxIovec>(address + (ulong)i * 16);
            if ((long)vectors[i].Length < 0 || (total += (long)vectors[i].Length) < 0)
            {
                throw ErrnoException.Of(Errno.EINVAL);
            }
        }

        return vectors;
    }

    /// <summary>SCM_RIGHTS and SCM_CREDENTIALS from a sendmsg's control buffer (Linux's __scm_send rules).</summary>
    private static SocketControl? ParseControl(KernelTask t, ISocket socket, ulong address, ulong length)
    {
        if (length == 0)
        {
            return null;
        }

        if (length > int.MaxValue)
        {
            throw ErrnoException.Of(Errno.ENOBUFS);
        }

        if (length < CmsgHeader)
        {
            return null;
        }

        var buffer = new byte[(int)Math.Min(length, 1 << 20)];
        t.Mm.Read(address, buffer);
        SocketControl? control = null;
        var files = new List<FileDescription>();
        try
        {
            int offset = 0;
            while (offset + CmsgHeader <= buffer.Length)
            {
                ulong cmsgLength = BinaryPrimitives.ReadUInt64LittleEndian(buffer.AsSpan(offset));
                int level = BinaryPrimitives.ReadInt32LittleEndian(buffer.AsSpan(offset + 8));
                int type = BinaryPrimitives.ReadInt32LittleEndian(buffer.AsSpan(offset + 12));
                if (cmsgLength < CmsgHeader || cmsgLength > (ulong)(buffer.Length - offset))
                {
                    throw ErrnoException.Of(Errno.EINVAL);
                }

                var data = buffer.AsSpan(offset + CmsgHeader, (int)cmsgLength - CmsgHeader);
                if (level == SOL_SOCKET)
                {
                    if (socket.Family != AF_UNIX || type is not (SCM_RIGHTS or SCM_CREDENTIALS))
                    {
                        throw ErrnoException.Of(Errno.EINVAL);
                    }

                    control ??= new SocketControl { Credentials = SentrySocket.CurrentCredentials() };
                    if (type == SCM_RIGHTS)
                    {
                        int count = data.Length / 4;
                        if (files.Count + count > SCM_MAX_FD)
                        {
                            throw ErrnoException.Of(Errno.EINVAL);
                        }

                        for (int i = 0; i < count; i++)
                        {
                            int fd = BinaryPrimitives.ReadInt32LittleEndian(data[(i * 4)..]);
                            var file = t.Fds.Get(fd);
                            if (file.IsPathOnly)
                            {
                                throw ErrnoException.Of(Errno.EBADF);
                            }

                            files.Add(file.AddReference());
                        }
                    }
                    else
                    {
                        if (data.Length != 12)
                        {
                            throw ErrnoException.Of(Errno.EINVAL);
                        }

                        var credentials = new SocketCredentials(
                            BinaryPrimitives.ReadInt32LittleEndian(data),
                            BinaryPrimitives.ReadInt32LittleEndian(data[4..]),
                            BinaryPrimitives.ReadInt32LittleEndian(data[8..]));
                        var own = t.Credentials;
                        bool root = own.IsRoot;
                        if ((credentials.Pid != t.Pid && !root)
                            || (!root && credentials.Uid != own.RealUid && credentials.Uid != own.EffectiveUid && credentials.Uid != own.SavedUid)
                            || (!root && credentials.Gid != own.RealGid && credentials.Gid != own.EffectiveGid && credentials.Gid != own.SavedGid))
                        {
                            throw ErrnoException.Of(Errno.EPERM);
                        }

                        if (t.Kernel.Pids.FindGroup(credentials.Pid) is null)
                        {
                            throw ErrnoException.Of(Errno.ESRCH);
                        }

                        control.Credentials = credentials;
                    }
                }

                offset += (int)((cmsgLength + 7) & ~7UL);
            }
        }
        catch
        {
            foreach (var file in files)
            {
                file.Release();
            }

            throw;
        }

        if (control is not null && files.Count > 0)
        {
            control.Files = [.. files];
        }

        return control;
    }

    /// <summary>Writes the received ancillary data: SCM_CREDENTIALS (with SO_PASSCRED), then SCM_RIGHTS, installing the fds that fit.</summary>
    private static int WriteControl(KernelTask t, ISocket socket, SocketControl? control, ulong address, ulong length, int flags, ref int messageFlags)
    {
        if (control is null || socket is not SentrySocket { Family: AF_UNIX } own)
        {
            return 0;
        }

        long room = (long)Math.Min(length, int.MaxValue);
        int used = 0;
        if (own.PassCredentials)
        {
            const int credLength = CmsgHeader + 12;
            if (address == 0 || room - used < credLength)
            {
                messageFlags |= MSG_CTRUNC;
            }
            else
            {
                Span<byte> cmsg = stackalloc byte[credLength];
                BinaryPrimitives.WriteUInt64LittleEndian(cmsg, credLength);
                BinaryPrimitives.WriteInt32LittleEndian(cmsg[8..], SOL_SOCKET);
                BinaryPrimitives.WriteInt32LittleEndian(cmsg[12..], SCM_CREDENTIALS);
                BinaryPrimitives.WriteInt32LittleEndian(cmsg[16..], control.Credentials.Pid);
                BinaryPrimitives.WriteInt32LittleEndian(cmsg[20..], control.Credentials.Uid);
                BinaryPrimitives.WriteInt32LittleEndian(cmsg[24..], control.Credentials.Gid);
                t.Mm.Write(address, cmsg);
                used = (int)Math.Min(room, (credLength + 7) & ~7);
            }
        }

        if (control.Files is { } files)
        {
            long fit = address == 0 ? 0 : Math.Max(0, (room - used - CmsgHeader) / 4);
            int install = (int)Math.Min(fit, files.Length);
            var fds = new List<int>();
            bool cloexec = (flags & MSG_CMSG_CLOEXEC) != 0;
            for (int i = 0; i < install; i++)
            {
                try
                {
                    fds.Add(t.Fds.Install(files[i].AddReference(), cloexec, t.Group.Limits.OpenFilesLimit));
                }
                catch (ErrnoException)
                {
                    files[i].Release();
                    break;
                }
            }

            if (fds.Count < files.Length)
            {
                messageFlags |= MSG_CTRUNC;
            }

            if (fds.Count > 0)
            {
                int cmsgLength = CmsgHeader + fds.Count * 4;
                var cmsg = new byte[cmsgLength];
                BinaryPrimitives.WriteUInt64LittleEndian(cmsg, (ulong)cmsgLength);
                BinaryPrimitives.WriteInt32LittleEndian(cmsg.AsSpan(8), SOL_SOCKET);
                BinaryPrimitives.WriteInt32LittleEndian(cmsg.AsSpan(12), SCM_RIGHTS);
                for (int i = 0; i < fds.Count; i++)
                {
                    BinaryPrimitives.WriteInt32LittleEndian(cmsg.AsSpan(CmsgHeader + i * 4), fds[i]);
                }

                t.Mm.Write(address + (ulong)used, cmsg);
                used = (int)Math.Min(room, used + ((cmsgLength + 7) & ~7));
            }
        }

        return used;
    }

    /// <summary>Sends, turning EPIPE into SIGPIPE unless MSG_NOSIGNAL; releases <paramref name="control"/> if it was not sent.</summary>
    private static long SendWithSignal(KernelTask t, FileDescription file, ISocket socket, LinuxIovec[] iov, byte[] address, int flags, SocketControl? control)
    {
        if (control is null && socket is SentrySocket { Family: AF_UNIX })
        {
            // Every Unix message carries its sender's credentials, for receivers with SO_PASSCRED.
            control = new SocketControl { Credentials = SentrySocket.CurrentCredentials() };
        }

        try
        {
            return Send(t, file, socket, iov, address, flags, ref control);
        }
        catch (ErrnoException e) when (e.Errno == Errno.EPIPE && (flags & MSG_NOSIGNAL) == 0)
        {
            t.SendSignal(SignalInfo.User(Signals.SIGPIPE, t.Pid, t.Credentials.RealUid));
            throw;
        }
        finally
        {
            control?.Release();
        }
    }

    private static long Send(KernelTask t, FileDescription file, ISocket socket, LinuxIovec[] iov, byte[] address, int flags, ref SocketControl? control)
    {
        if ((flags & MSG_OOB) != 0 && socket is not HostSocket && socket is not StreamSocket { CarriesUrgentData: true })
        {
            // Urgent data is TCP's (host sockets have the host's); UDP, Unix and netlink refuse it.
            throw ErrnoException.Of(Errno.EOPNOTSUPP);
        }

        long total = 0;
        foreach (var v in iov)
        {
            total += (long)v.Length;
        }

        total = Math.Min(total, FileIo.MaxTransfer);
        bool stream = socket.Type == SOCK_STREAM;
        bool nonBlocking = file.NonBlocking || (flags & MSG_DONTWAIT) != 0;
        long deadline = Deadline((socket as IKernelSocket)?.SendTimeout ?? 0);
        if (!stream && total > 1 << 20)
        {
            throw ErrnoException.Of(Errno.EMSGSIZE);
        }

        int size = (int)(stream ? Math.Min(total, Chunk) : total);
        byte[] buffer = ArrayPool<byte>.Shared.Rent(Math.Max(size, 1));
        long done = 0;
        try
        {
            do
            {
                int want = (int)Math.Min(total - done, size);
                Gather(t, iov, done, buffer.AsSpan(0, want));
                long n;
                try
                {
                    n = SendChunk(t, socket, buffer.AsSpan(0, want), address, flags, ref control, nonBlocking, deadline, stream);
                }
                catch (ErrnoException) when (done > 0)
                {
                    return done;
                }

                done += n;
                if (n < want)
                {
                    break;
                }
            }
            while (done < total);

            return done;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private static long SendChunk(KernelTask t, ISocket socket, ReadOnlySpan<byte> data, ReadOnlySpan<byte> address, int flags, ref SocketControl? control, bool nonBlocking, long deadline, bool stream)
    {
        long done = 0;
        while (true)
        {
            try
            {
                long n = socket is SentrySocket own
                    ? own.SendMessage(data[(int)done..], address, flags, control)
                    : socket.Send(data[(int)done..], address, flags);
                control = null;
                done += n;
                if (done == data.Length || !stream || nonBlocking)
                {
                    return done;
                }
            }
            catch (ErrnoException e) when (e.Errno == Errno.EAGAIN && !nonBlocking)
            {
                try
                {
                    Block(t, socket, PollEvents.Out | PollEvents.WriteNormal, deadline);
                }
                catch (ErrnoException) when (done > 0)
                {
                    return done;
                }
            }
            catch (ErrnoException) when (done > 0)
            {
                return done;
            }
        }
    }

    private static long Receive(KernelTask t, FileDescription file, ISocket socket, LinuxIovec[] iov, int flags, out byte[]? sender, out SocketControl? control, out int messageFlags)
    {
        sender = null;
        control = null;
        messageFlags = 0;
        if ((flags & MSG_ERRQUEUE) != 0)
        {
            throw ErrnoException.Of(socket.Family == AF_UNIX ? Errno.EOPNOTSUPP : Errno.EAGAIN);
        }

        if ((flags & MSG_OOB) != 0 && socket is not HostSocket)
        {
            if (socket is StreamSocket { CarriesUrgentData: true } tcp)
            {
                // tcp_recv_urg: the urgent byte, never waiting.
                Span<byte> one = stackalloc byte[1];
                bool room = iov.Any(v => v.Length > 0);
                long got = tcp.ReceiveUrgent(one[..(room ? 1 : 0)], flags, out messageFlags);
                if ((flags & MSG_TRUNC) == 0)
                {
                    Scatter(t, iov, 0, one[..(int)got]);
                }

                return got;
            }

            if (socket is not DatagramSocket || socket.Family == AF_UNIX)
            {
                // Unix and netlink refuse MSG_OOB; UDP ignores it.
                throw ErrnoException.Of(Errno.EOPNOTSUPP);
            }
        }

        long total = 0;
        foreach (var v in iov)
        {
            total += (long)v.Length;
        }

        total = Math.Min(total, FileIo.MaxTransfer);
        bool stream = socket.Type == SOCK_STREAM;
        if (total == 0 && stream && socket.Family != AF_UNIX && socket is not SentrySocket { IsListening: true })
        {
            // tcp_recvmsg copies nothing and does not wait for a zero-length read.
            return 0;
        }

        bool nonBlocking = file.NonBlocking || (flags & MSG_DONTWAIT) != 0;
        bool waitAll = stream && (flags & MSG_WAITALL) != 0 && (flags & MSG_PEEK) == 0 && !nonBlocking;
        long deadline = Deadline((socket as IKernelSocket)?.ReceiveTimeout ?? 0);
        int size = (int)Math.Min(total, Chunk);
        byte[] buffer = ArrayPool<byte>.Shared.Rent(Math.Max(size, 1));
        long done = 0;
        try
        {
            while (true)
            {
                int want = (int)Math.Min(total - done, size);
                long n;
                try
                {
                    n = ReceiveOnce(t, socket, buffer.AsSpan(0, want), flags, out var from, out var got, out int gotFlags, nonBlocking, deadline);
                    if (done == 0)
                    {
                        sender = from;
                        control = got;
                        messageFlags = gotFlags;
                    }
                    else
                    {
                        got?.Release();
                    }
                }
                catch (ErrnoException) when (done > 0)
                {
                    return done;
                }

                Scatter(t, iov, done, buffer.AsSpan(0, (int)Math.Min(n, want)));
                done += n;
                if (!waitAll || n == 0 || done >= total || control?.Files is not null || socket is SentrySocket { AtUrgentMark: true })
                {
                    return done;
                }
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private static long ReceiveOnce(KernelTask t, ISocket socket, Span<byte> data, int flags, out byte[]? sender, out SocketControl? control, out int messageFlags, bool nonBlocking, long deadline)
    {
        while (true)
        {
            try
            {
                if (socket is SentrySocket own)
                {
                    return own.ReceiveMessage(data, flags, out sender, out control, out messageFlags);
                }

                Span<byte> address = stackalloc byte[MaxAddress];
                messageFlags = flags;
                long n = socket.Receive(data, address, out int length, ref messageFlags);
                sender = length > 0 ? address[..Math.Min(length, MaxAddress)].ToArray() : null;
                control = null;
                return n;
            }
            catch (ErrnoException e) when (e.Errno == Errno.EAGAIN && !nonBlocking)
            {
                Block(t, socket, PollEvents.In | PollEvents.ReadNormal | PollEvents.ReadHangUp, deadline);
            }
        }
    }

    private static void Gather(KernelTask t, LinuxIovec[] iov, long skip, Span<byte> destination)
    {
        int filled = 0;
        foreach (var v in iov)
        {
            if (filled == destination.Length)
            {
                return;
            }

            long length = (long)v.Length;
            if (skip >= length)
            {
                skip -= length;
                continue;
            }

            int n = (int)Math.Min(length - skip, destination.Length - filled);
            t.Mm.Read(v.Base + (ulong)skip, destination.Slice(filled, n));
            filled += n;
            skip = 0;
        }
    }

    private static void Scatter(KernelTask t, LinuxIovec[] iov, long skip, ReadOnlySpan<byte> source)
    {
        int written = 0;
        foreach (var v in iov)
        {
            if (written == source.Length)
            {
                return;
            }

            long length = (long)v.Length;
            if (skip >= length)
            {
                skip -= length;
                continue;
            }

            int n = (int)Math.Min(length - skip, source.Length - written);
            t.Mm.Write(v.Base + (ulong)skip, source.Slice(written, n));
            written += n;
            skip = 0;
        }
    }

    private static long Deadline(long timeout) => timeout > 0 ? Kernel.Kernel.Now + timeout : -1;

    /// <summary>
    /// Waits until the socket is ready for <paramref name="events"/>: EAGAIN (or
    /// <paramref name="timeoutErrno"/>) when the deadline passes; a signal restarts the call,
    /// or gives EINTR when the socket has a timeout.
    /// </summary>
    private static void Block(KernelTask t, ISocket socket, PollEvents events, long deadline, Errno timeoutErrno = Errno.EAGAIN)
    {
        var mask = events | PollEvents.Error | PollEvents.HangUp;
        bool ready;
        try
        {
            ready = t.WaitUntil(socket.Waiters, mask, () => socket.Poll(mask) != 0, deadline);
        }
        catch (ErrnoException e) when (e.Errno == Errno.ERESTARTSYS && deadline >= 0)
        {
            throw ErrnoException.Of(Errno.EINTR);
        }

        if (!ready)
        {
            throw ErrnoException.Of(timeoutErrno);
        }
    }
}
