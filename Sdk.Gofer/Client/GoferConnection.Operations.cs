using AppKernel.Gofer.Client;
using AppKernel.Gofer.Native;
using AppKernel.Gofer.Protocol;

namespace AppKernel.Gofer;

/// <summary>A node the Gofer answered with.</summary>
internal readonly record struct NodeReply(ulong Node, WireAttributes Attributes);

/// <summary>A node the client dropped, queued for release (and what else to forget with it).</summary>
internal readonly record struct ReleasedNode(GoferFileSystem? FileSystem, ulong Node, ulong Dev, ulong Ino, GoferPageCache? Pages);

/// <summary>One directory entry as the Gofer sends it (host cookie).</summary>
internal readonly record struct WireDirent(ulong Ino, long NextHostCookie, byte Type, string Name, bool HasAttributes, WireAttributes Attributes);

/// <summary>The typed requests. Each returns 0 or the errno the Gofer answered; transport failures throw EIO.</summary>
public sealed partial class GoferConnection
{
    internal int Attach(int root, out NodeReply reply)
    {
        var s = Rent();
        try
        {
            var w = s.Begin(Op.Attach);
            w.U32((uint)root);
            var r = Exchange(s, w.Finish(), -1, out _);
            return ReadNode(ref r, out reply);
        }
        finally
        {
            Return(s);
        }
    }

    internal int Walk(ulong dir, string name, out NodeReply reply)
    {
        var s = Rent();
        try
        {
            var w = s.Begin(Op.Walk);
            w.U64(dir);
            w.String(name);
            var r = Exchange(s, w.Finish(), -1, out _);
            return ReadNode(ref r, out reply);
        }
        finally
        {
            Return(s);
        }
    }

    internal int GetAttr(ulong node, out WireAttributes attributes)
    {
        var s = Rent();
        try
        {
            var w = s.Begin(Op.GetAttr);
            w.U64(node);
            var r = Exchange(s, w.Finish(), -1, out _);
            attributes = r.Status == 0 ? WireAttributes.Read(ref r) : default;
            return r.Status;
        }
        finally
        {
            Return(s);
        }
    }

    internal int Open(ulong node, int flags, out int fd, out WireAttributes attributes)
    {
        var s = Rent();
        try
        {
            var w = s.Begin(Op.Open);
            w.U64(node);
            w.U32((uint)flags);
            var r = Exchange(s, w.Finish(), -1, out fd);
            attributes = r.Status == 0 ? WireAttributes.Read(ref r) : default;
            if (r.Status == 0 && fd < 0)
            {
                throw Broken(s, "open answered without a descriptor");
            }

            return r.Status;
        }
        finally
        {
            Return(s);
        }
    }

    /// <summary>One batch of <paramref name="dir"/>'s entries from <paramref name="hostCookie"/>; <paramref name="end"/> when the directory has no more.</summary>
    internal int ReadDir(ulong dir, long hostCookie, bool withAttributes, List<WireDirent> entries, out bool end)
    {
        var s = Rent();
        try
        {
            var w = s.Begin(Op.ReadDir);
            w.U64(dir);
            w.I64(hostCookie);
            w.U32(Wire.MaxReadDirBytes);
            w.U32(withAttributes ? Wire.ReadDirAttributes : 0);
            var r = Exchange(s, w.Finish(), -1, out _);
            end = false;
            if (r.Status != 0)
            {
                return r.Status;
            }

            ReadEntries(ref r, withAttributes, entries, out end);
            return 0;
        }
        finally
        {
            Return(s);
        }
    }

    /// <summary>Walk + ReadDir: 0 or the walk's errno; <paramref name="listStatus"/> is the listing's.</summary>
    internal int WalkReadDir(ulong dir, string name, long hostCookie, bool withAttributes, List<WireDirent> entries, out NodeReply reply, out int listStatus, out bool end)
    {
        var s = Rent();
        try
        {
            var w = s.Begin(Op.WalkReadDir);
            w.U64(dir);
            w.String(name);
            w.I64(hostCookie);
            w.U32(Wire.MaxReadDirBytes);
            w.U32(withAttributes ? Wire.ReadDirAttributes : 0);
            var r = Exchange(s, w.Finish(), -1, out _);
            end = false;
            listStatus = 0;
            int status = ReadNode(ref r, out reply);
            if (status != 0)
            {
                return status;
            }

            listStatus = r.I32();
            if (listStatus == 0)
            {
                ReadEntries(ref r, withAttributes, entries, out end);
            }

            return 0;
        }
        finally
        {
            Return(s);
        }
    }

    /// <summary>Walk + Open: 0 or the walk's errno; <paramref name="openStatus"/> is the open's (with <paramref name="fd"/> and <paramref name="attributes"/> when 0).</summary>
    internal int WalkOpen(ulong dir, string name, int flags, out NodeReply reply, out int openStatus, out int fd, out WireAttributes attributes)
    {
        var s = Rent();
        try
        {
            var w = s.Begin(Op.WalkOpen);
            w.U64(dir);
            w.String(name);
            w.U32((uint)flags);
            var r = Exchange(s, w.Finish(), -1, out fd);
            openStatus = 0;
            attributes = default;
            int status = ReadNode(ref r, out reply);
            if (status != 0)
            {
                return status;
            }

            openStatus = r.I32();
            if (openStatus == 0)
            {
                attributes = WireAttributes.Read(ref r);
                if (fd < 0)
                {
                    throw Broken(s, "open answered without a descriptor");
                }
            }
            else if (fd >= 0)
            {
                Host.Close(fd);
                fd = -1;
            }

            return 0;
        }
        finally
        {
            Return(s);
        }
    }

    private static void ReadEntries(ref MessageReader r, bool withAttributes, List<WireDirent> entries, out bool end)
    {
        uint count = r.U32();
        for (uint i = 0; i < count; i++)
        {
            ulong ino = r.U64();
            long next = r.I64();
            byte type = r.U8();
            string entryName = r.String();
            bool hasAttributes = withAttributes && r.U8() != 0;
            var attributes = hasAttributes ? WireAttributes.Read(ref r) : default;
            entries.Add(new WireDirent(ino, next, type, entryName, hasAttributes, attributes));
        }

        end = r.U8() != 0;
    }

    internal int ReadLink(ulong node, out string target)
    {
        var s = Rent();
        try
        {
            var w = s.Begin(Op.ReadLink);
            w.U64(node);
            var r = Exchange(s, w.Finish(), -1, out _);
            target = r.Status == 0 ? r.String() : string.Empty;
            return r.Status;
        }
        finally
        {
            Return(s);
        }
    }

    internal int StatFs(ulong node, out long[] values)
    {
        var s = Rent();
        try
        {
            var w = s.Begin(Op.StatFs);
            w.U64(node);
            var r = Exchange(s, w.Finish(), -1, out _);
            values = new long[8];
            if (r.Status == 0)
            {
                for (int i = 0; i < values.Length; i++)
                {
                    values[i] = r.I64();
                }
            }

            return r.Status;
        }
        finally
        {
            Return(s);
        }
    }

    internal int Create(ulong dir, string name, uint mode, int flags, int uid, int gid, out NodeReply reply, out int fd)
    {
        var s = Rent();
        try
        {
            var w = s.Begin(Op.Create);
            w.U64(dir);
            w.String(name);
            w.U32(mode);
            w.U32((uint)flags);
            w.I32(uid);
            w.I32(gid);
            var r = Exchange(s, w.Finish(), -1, out fd);
            int status = ReadNode(ref r, out reply);
            if (status == 0 && fd < 0)
            {
                throw Broken(s, "create answered without a descriptor");
            }

            return status;
        }
        finally
        {
            Return(s);
        }
    }

    internal int Mkdir(ulong dir, string name, uint mode, int uid, int gid, out NodeReply reply)
    {
        var s = Rent();
        try
        {
            var w = s.Begin(Op.Mkdir);
            w.U64(dir);
            w.String(name);
            w.U32(mode);
            w.I32(uid);
            w.I32(gid);
            var r = Exchange(s, w.Finish(), -1, out _);
            return ReadNode(ref r, out reply);
        }
        finally
        {
            Return(s);
        }
    }

    internal int Mknod(ulong dir, string name, uint mode, ulong rdev, int uid, int gid, out NodeReply reply)
    {
        var s = Rent();
        try
        {
            var w = s.Begin(Op.Mknod);
            w.U64(dir);
            w.String(name);
            w.U32(mode);
            w.U64(rdev);
            w.I32(uid);
            w.I32(gid);
            var r = Exchange(s, w.Finish(), -1, out _);
            return ReadNode(ref r, out reply);
        }
        finally
        {
            Return(s);
        }
    }

    internal int Symlink(ulong dir, string name, string target, int uid, int gid, out NodeReply reply)
    {
        var s = Rent();
        try
        {
            var w = s.Begin(Op.Symlink);
            w.U64(dir);
            w.String(name);
            w.String(target);
            w.I32(uid);
            w.I32(gid);
            var r = Exchange(s, w.Finish(), -1, out _);
            return ReadNode(ref r, out reply);
        }
        finally
        {
            Return(s);
        }
    }

    internal int Link(ulong dir, string name, ulong target, out WireAttributes attributes)
    {
        var s = Rent();
        try
        {
            var w = s.Begin(Op.Link);
            w.U64(dir);
            w.String(name);
            w.U64(target);
            var r = Exchange(s, w.Finish(), -1, out _);
            attributes = r.Status == 0 ? WireAttributes.Read(ref r) : default;
            return r.Status;
        }
        finally
        {
            Return(s);
        }
    }

    internal int Unlink(ulong dir, string name, bool directory, out ulong ino)
    {
        var s = Rent();
        try
        {
            var w = s.Begin(Op.Unlink);
            w.U64(dir);
            w.String(name);
            w.U32(directory ? (uint)Host.AT_REMOVEDIR : 0);
            var r = Exchange(s, w.Finish(), -1, out _);
            ino = r.Status == 0 ? r.U64() : 0;
            return r.Status;
        }
        finally
        {
            Return(s);
        }
    }

    internal int Rename(ulong oldDir, string oldName, ulong newDir, string newName, uint flags, out ulong moved, out ulong replaced)
    {
        var s = Rent();
        try
        {
            var w = s.Begin(Op.Rename);
            w.U64(oldDir);
            w.String(oldName);
            w.U64(newDir);
            w.String(newName);
            w.U32(flags);
            var r = Exchange(s, w.Finish(), -1, out _);
            moved = replaced = 0;
            if (r.Status == 0)
            {
                moved = r.U64();
                replaced = r.U64();
            }

            return r.Status;
        }
        finally
        {
            Return(s);
        }
    }

    internal int SetAttr(ulong node, WireSetAttr mask, uint mode, int uid, int gid, long size, Vfs.Timespec atime, Vfs.Timespec mtime, out WireAttributes attributes)
    {
        var s = Rent();
        try
        {
            var w = s.Begin(Op.SetAttr);
            w.U64(node);
            w.U32((uint)mask);
            w.U32(mode);
            w.I32(uid);
            w.I32(gid);
            w.I64(size);
            w.I64(atime.Seconds);
            w.I64(atime.Nanoseconds);
            w.I64(mtime.Seconds);
            w.I64(mtime.Nanoseconds);
            var r = Exchange(s, w.Finish(), -1, out _);
            attributes = r.Status == 0 ? WireAttributes.Read(ref r) : default;
            return r.Status;
        }
        finally
        {
            Return(s);
        }
    }

    /// <summary>Asks the Gofer to probe its own confinement: (probe, errno) pairs, 0 meaning the call succeeded.</summary>
    internal IReadOnlyList<(string Probe, int Errno)> SelfCheck()
    {
        var s = Rent();
        try
        {
            var w = s.Begin(Op.SelfCheck);
            var r = Exchange(s, w.Finish(), -1, out _);
            var result = new List<(string, int)>();
            if (r.Status == 0)
            {
                uint count = r.U32();
                for (uint i = 0; i < count; i++)
                {
                    result.Add((r.String(), r.I32()));
                }
            }

            return result;
        }
        finally
        {
            Return(s);
        }
    }

    private static int ReadNode(ref MessageReader r, out NodeReply reply)
    {
        if (r.Status != 0)
        {
            reply = default;
            return r.Status;
        }

        ulong node = r.U64();
        reply = new NodeReply(node, WireAttributes.Read(ref r));
        return 0;
    }

    private ErrnoException Broken(PooledSocket socket, string what)
    {
        socket.Broken = true;
        Fail($"protocol error: {what}", log: true);
        return Dead();
    }
}
