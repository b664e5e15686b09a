using System.Runtime.InteropServices;
using AppKernel.Sentry.Kernel;
using AppKernel.Syscalls;

namespace AppKernel.Sentry.Syscalls;

/// <summary>
/// Changing who a task is: the set*uid/set*gid family, setgroups, setfsuid/setfsgid, capget/capset.
/// Credentials belong to one thread, as on Linux; the C library makes a change process-wide by
/// repeating it in every thread.
/// </summary>
internal static class CredentialSyscalls
{
    private const int CAP_SETGID = 6, CAP_SETUID = 7, CAP_SETPCAP = 8;
    private const int NGROUPS_MAX = 65536;
    private const uint CapabilityVersion1 = 0x19980330, CapabilityVersion2 = 0x20071026, CapabilityVersion3 = 0x20080522;

    /// <summary>(uid_t)-1: "leave this id alone" for setreuid/setresuid, invalid for setuid.</summary>
    private const uint Unchanged = uint.MaxValue;

    [Syscall(105)]
    public static SyscallResult Setuid(ISyscallContext c)
    {
        var t = c.Task();
        uint uid = (uint)c.Arguments.A0;
        if (uid == Unchanged)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        var old = t.Credentials;
        int id = (int)uid;
        Credentials updated;
        if (old.HasCapability(CAP_SETUID))
        {
            updated = old with { RealUid = id, EffectiveUid = id, SavedUid = id, FsUid = id };
        }
        else if (id == old.RealUid || id == old.SavedUid)
        {
            updated = old with { EffectiveUid = id, FsUid = id };
        }
        else
        {
            return SyscallResult.Error(Errno.EPERM);
        }

        t.Credentials = updated.AfterUidChange(old);
        return SyscallResult.Zero;
    }

    [Syscall(106)]
    public static SyscallResult Setgid(ISyscallContext c)
    {
        var t = c.Task();
        uint gid = (uint)c.Arguments.A0;
        if (gid == Unchanged)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        var old = t.Credentials;
        int id = (int)gid;
        if (old.HasCapability(CAP_SETGID))
        {
            t.Credentials = old with { RealGid = id, EffectiveGid = id, SavedGid = id, FsGid = id };
        }
        else if (id == old.RealGid || id == old.SavedGid)
        {
            t.Credentials = old with { EffectiveGid = id, FsGid = id };
        }
        else
        {
            return SyscallResult.Error(Errno.EPERM);
        }

        return SyscallResult.Zero;
    }

    [Syscall(113)]
    public static SyscallResult Setreuid(ISyscallContext c)
    {
        var t = c.Task();
        var old = t.Credentials;
        if (!SetRealEffective(old.RealUid, old.EffectiveUid, old.SavedUid, (uint)c.Arguments.A0, (uint)c.Arguments.A1,
                old.HasCapability(CAP_SETUID), out int real, out int effective, out int saved))
        {
            return SyscallResult.Error(Errno.EPERM);
        }

        t.Credentials = (old with { RealUid = real, EffectiveUid = effective, SavedUid = saved, FsUid = effective }).AfterUidChange(old);
        return SyscallResult.Zero;
    }

    [Syscall(114)]
    public static SyscallResult Setregid(ISyscallContext c)
    {
        var t = c.Task();
        var old = t.Credentials;
        if (!SetRealEffective(old.RealGid, old.EffectiveGid, old.SavedGid, (uint)c.Arguments.A0, (uint)c.Arguments.A1,
                old.HasCapability(CAP_SETGID), out int real, out int effective, out int saved))
        {
            return SyscallResult.Error(Errno.EPERM);
        }

        t.Credentials = old with { RealGid = real, EffectiveGid = effective, SavedGid = saved, FsGid = effective };
        return SyscallResult.Zero;
    }

    [Syscall(117)]
    public static SyscallResult Setresuid(ISyscallContext c)
    {
        var t = c.Task();
        var old = t.Credentials;
        if (!SetAll(old.RealUid, old.EffectiveUid, old.SavedUid, c.Arguments, old.HasCapability(CAP_SETUID),
                out int real, out int effective, out int saved))
        {
            return SyscallResult.Error(Errno.EPERM);
        }

        t.Credentials = (old with { RealUid = real, EffectiveUid = effective, SavedUid = saved, FsUid = effective }).AfterUidChange(old);
        return SyscallResult.Zero;
    }

    [Syscall(119)]
    public static SyscallResult Setresgid(ISyscallContext c)
    {
        var t = c.Task();
        var old = t.Credentials;
        if (!SetAll(old.RealGid, old.EffectiveGid, old.SavedGid, c.Arguments, old.HasCapability(CAP_SETGID),
                out int real, out int effective, out int saved))
        {
            return SyscallResult.Error(Errno.EPERM);
        }

        t.Credentials = old with { RealGid = real, EffectiveGid = effective, SavedGid = saved, FsGid = effective };
        return SyscallResult.Zero;
    }

    [Syscall(122)]
    public static SyscallResult Setfsuid(ISyscallContext c)
    {
        // Never fails: it returns the previous fs uid and changes it only when allowed.
        var t = c.Task();
        var old = t.Credentials;
        uint uid = (uint)c.Arguments.A0;
        int id = (int)uid;
        if (uid != Unchanged && id != old.FsUid &&
            (old.HasCapability(CAP_SETUID) || id == old.RealUid || id == old.EffectiveUid || id == old.SavedUid))
        {
            t.Credentials = (old with { FsUid = id }).AfterUidChange(old);
        }

        return SyscallResult.Ok(old.FsUid);
    }

    [Syscall(123)]
    public static SyscallResult Setfsgid(ISyscallContext c)
    {
        var t = c.Task();
        var old = t.Credentials;
        uint gid = (uint)c.Arguments.A0;
        int id = (int)gid;
        if (gid != Unchanged && id != old.FsGid &&
            (old.HasCapability(CAP_SETGID) || id == old.RealGid || id == old.EffectiveGid || id == old.SavedGid))
        {
            t.Credentials = old with { FsGid = id };
        }

        return SyscallResult.Ok(old.FsGid);
    }

    [Syscall(116)]
    public static SyscallResult Setgroups(ISyscallContext c)
    {
        var t = c.Task();
        long size = (int)c.Arguments.A0;
        if (size < 0 || size > NGROUPS_MAX)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        if (!t.Credentials.HasCapability(CAP_SETGID))
        {
            return SyscallResult.Error(Errno.EPERM);
        }

        var groups = new int[size];
        t.Mm.Read(c.Arguments.A1, MemoryMarshal.AsBytes(groups.AsSpan()));
        // Linux keeps the list sorted (as unsigned ids), which getgroups shows.
        Array.Sort(groups, static (a, b) => ((uint)a).CompareTo((uint)b));
        t.Credentials = t.Credentials with { Groups = groups };
        return SyscallResult.Zero;
    }

    [Syscall(125)]
    public static SyscallResult Capget(ISyscallContext c)
    {
        var t = c.Task();
        var status = ReadCapabilityHeader(t, c.Arguments.A0, out int words);
        if (c.Arguments.A1 == 0 || status != Errno.None)
        {
            // A NULL data pointer probes the version: a wrong one has been rewritten and is not an error.
            return c.Arguments.A1 == 0 && status == Errno.EINVAL ? SyscallResult.Zero
                : status == Errno.None ? SyscallResult.Zero : SyscallResult.Error(status);
        }

        int pid = t.Mm.ReadValue<int>(c.Arguments.A0 + 4);
        if (pid < 0)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        Credentials creds;
        if (pid == 0 || pid == t.Tid)
        {
            creds = t.Credentials;
        }
        else
        {
            var target = t.Kernel.Pids.FindTask(pid);
            if (target is null)
            {
                return SyscallResult.Error(Errno.ESRCH);
            }

            creds = target.Credentials;
        }

        Span<uint> data = stackalloc uint[6];
        for (int i = 0; i < words; i++)
        {
            data[i * 3] = (uint)(creds.EffectiveCaps >> (32 * i));
            data[i * 3 + 1] = (uint)(creds.PermittedCaps >> (32 * i));
            data[i * 3 + 2] = (uint)(creds.InheritableCaps >> (32 * i));
        }

        t.Mm.Write(c.Arguments.A1, MemoryMarshal.AsBytes(data[..(words * 3)]));
        return SyscallResult.Zero;
    }

    [Syscall(126)]
    public static SyscallResult Capset(ISyscallContext c)
    {
        var t = c.Task();
        var status = ReadCapabilityHeader(t, c.Arguments.A0, out int words);
        if (status != Errno.None)
        {
            return SyscallResult.Error(status);
        }

        int pid = t.Mm.ReadValue<int>(c.Arguments.A0 + 4);
        if (pid != 0 && pid != t.Tid)
        {
            return SyscallResult.Error(Errno.EPERM);
        }

        Span<uint> data = stackalloc uint[6];
        data.Clear();
        t.Mm.Read(c.Arguments.A1, MemoryMarshal.AsBytes(data[..(words * 3)]));
        ulong effective = (data[0] | ((ulong)data[3] << 32)) & Credentials.AllCapabilities;
        ulong permitted = (data[1] | ((ulong)data[4] << 32)) & Credentials.AllCapabilities;
        ulong inheritable = (data[2] | ((ulong)data[5] << 32)) & Credentials.AllCapabilities;

        var old = t.Credentials;
        bool inheritableWithinReach = (inheritable & ~(old.InheritableCaps | old.PermittedCaps)) == 0 || old.HasCapability(CAP_SETPCAP);
        if (!inheritableWithinReach ||
            (inheritable & ~(old.InheritableCaps | old.BoundingCaps)) != 0 ||
            (permitted & ~old.PermittedCaps) != 0 ||
            (effective & ~permitted) != 0)
        {
            return SyscallResult.Error(Errno.EPERM);
        }

        t.Credentials = old with { EffectiveCaps = effective, PermittedCaps = permitted, InheritableCaps = inheritable };
        return SyscallResult.Zero;
    }

    /// <summary>
    /// Reads a __user_cap_header_struct's version: 1 gives one 32-bit word per set, 2 and 3 give two.
    /// An unknown version is answered by writing the preferred one back and EINVAL.
    /// </summary>
    private static Errno ReadCapabilityHeader(KernelTask t, ulong header, out int words)
    {
        uint version = t.Mm.ReadValue<uint>(header);
        switch (version)
        {
            case CapabilityVersion1:
                words = 1;
                return Errno.None;
            case CapabilityVersion2:
            case CapabilityVersion3:
                words = 2;
                return Errno.None;
            default:
                words = 0;
                t.Mm.WriteValue(header, CapabilityVersion3);
                return Errno.EINVAL;
        }
    }

    /// <summary>setreuid/setregid's rules: an unprivileged caller may set the real id to the real or effective id and the effective id to any of the three; the saved id follows a changed effective id.</summary>
    private static bool SetRealEffective(int real, int effective, int saved, uint newReal, uint newEffective, bool privileged,
        out int realOut, out int effectiveOut, out int savedOut)
    {
        realOut = real;
        effectiveOut = effective;
        savedOut = saved;
        if (newReal != Unchanged)
        {
            if (!privileged && (int)newReal != real && (int)newReal != effective)
            {
                return false;
            }

            realOut = (int)newReal;
        }

        if (newEffective != Unchanged)
        {
            if (!privileged && (int)newEffective != real && (int)newEffective != effective && (int)newEffective != saved)
            {
                return false;
            }

            effectiveOut = (int)newEffective;
        }

        if (newReal != Unchanged || (newEffective != Unchanged && (int)newEffective != real))
        {
            savedOut = effectiveOut;
        }

        return true;
    }

    /// <summary>setresuid/setresgid's rules: an unprivileged caller may set each id only to one of its current three.</summary>
    private static bool SetAll(int real, int effective, int saved, SyscallArguments a, bool privileged,
        out int realOut, out int effectiveOut, out int savedOut)
    {
        uint r = (uint)a.A0, e = (uint)a.A1, s = (uint)a.A2;
        bool Allowed(uint id) => id == Unchanged || privileged || (int)id == real || (int)id == effective || (int)id == saved;
        realOut = r == Unchanged ? real : (int)r;
        effectiveOut = e == Unchanged ? effective : (int)e;
        savedOut = s == Unchanged ? saved : (int)s;
        return Allowed(r) && Allowed(e) && Allowed(s);
    }
}
