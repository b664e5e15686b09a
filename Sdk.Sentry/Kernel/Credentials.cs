namespace AppKernel.Sentry.Kernel;

/// <summary>
/// A task's user and group ids and capability sets (credentials(7), capabilities(7)). Immutable:
/// setuid and friends replace the object. The sandbox is its own user namespace, so uid 0 holds
/// every capability there and nothing outside it.
/// </summary>
internal sealed record Credentials(
    int RealUid, int EffectiveUid, int SavedUid, int FsUid,
    int RealGid, int EffectiveGid, int SavedGid, int FsGid,
    int[] Groups)
{
    /// <summary>CAP_LAST_CAP of the kernels the sandbox reports (CAP_CHECKPOINT_RESTORE).</summary>
    public const int LastCapability = 40;

    /// <summary>Every capability the kernel knows.</summary>
    public const ulong AllCapabilities = (1UL << (LastCapability + 1)) - 1;

    /// <summary>Capabilities that follow the fs uid (CAP_FS_MASK: chown, dac override/read search, fowner, fsetid, linux immutable, mknod, mac override).</summary>
    public const ulong FsCapabilities = (1UL << 0) | (1UL << 1) | (1UL << 2) | (1UL << 3) | (1UL << 4) | (1UL << 9) | (1UL << 27) | (1UL << 32);

    /// <summary>Capabilities that limit what this task can use now.</summary>
    public ulong EffectiveCaps { get; init; }

    /// <summary>The superset of what <see cref="EffectiveCaps"/> may hold.</summary>
    public ulong PermittedCaps { get; init; }

    /// <summary>Kept across execve for programs that ask for them (no file capabilities exist here).</summary>
    public ulong InheritableCaps { get; init; }

    /// <summary>What execve may grant; PR_CAPBSET_DROP shrinks it.</summary>
    public ulong BoundingCaps { get; init; } = AllCapabilities;

    /// <summary>PR_SET_KEEPCAPS: permitted capabilities survive the switch away from uid 0 (cleared by execve).</summary>
    public bool KeepCaps { get; init; }

    public static Credentials ForUser(int uid, int gid) => new(uid, uid, uid, uid, gid, gid, gid, gid, [])
    {
        EffectiveCaps = uid == 0 ? AllCapabilities : 0,
        PermittedCaps = uid == 0 ? AllCapabilities : 0,
    };

    /// <summary>Root in the sandbox's user namespace: holds every capability (a task that dropped some is not).</summary>
    public bool IsRoot => (EffectiveCaps & AllCapabilities) == AllCapabilities;

    /// <summary>True when capability number <paramref name="capability"/> is effective.</summary>
    public bool HasCapability(int capability) => (EffectiveCaps & (1UL << capability)) != 0;

    /// <summary>True when <paramref name="gid"/> is the fs group or a supplementary group.</summary>
    public bool InGroup(int gid) => FsGid == gid || Array.IndexOf(Groups, gid) >= 0;

    /// <summary>
    /// Applies capabilities(7)'s rules for a change of user ids from <paramref name="old"/> to these:
    /// losing uid 0 everywhere clears the permitted set (unless keep-caps), leaving effective uid 0
    /// clears the effective set, returning to it restores it from permitted, and the fs capabilities
    /// follow the fs uid.
    /// </summary>
    public Credentials AfterUidChange(Credentials old)
    {
        ulong permitted = PermittedCaps, effective = EffectiveCaps;
        bool wasRoot = old.RealUid == 0 || old.EffectiveUid == 0 || old.SavedUid == 0;
        if (wasRoot && RealUid != 0 && EffectiveUid != 0 && SavedUid != 0 && !KeepCaps)
        {
            permitted = 0;
            effective = 0;
        }

        if (old.EffectiveUid == 0 && EffectiveUid != 0)
        {
            effective = 0;
        }
        else if (old.EffectiveUid != 0 && EffectiveUid == 0)
        {
            effective = permitted;
        }

        if (old.FsUid == 0 && FsUid != 0)
        {
            effective &= ~FsCapabilities;
        }
        else if (old.FsUid != 0 && FsUid == 0)
        {
            effective |= permitted & FsCapabilities;
        }

        return this with { PermittedCaps = permitted, EffectiveCaps = effective };
    }

    /// <summary>
    /// The credentials after execve of a file without set-id bits or file capabilities: the saved ids
    /// take the effective ones, root keeps its capabilities (bounded), everyone else loses them,
    /// keep-caps is cleared.
    /// </summary>
    public Credentials ForExec()
    {
        bool privileged = RealUid == 0 || EffectiveUid == 0;
        ulong permitted = privileged ? BoundingCaps | (InheritableCaps & BoundingCaps) : 0;
        return this with
        {
            SavedUid = EffectiveUid, FsUid = EffectiveUid,
            SavedGid = EffectiveGid, FsGid = EffectiveGid,
            PermittedCaps = permitted,
            EffectiveCaps = EffectiveUid == 0 ? permitted : 0,
            KeepCaps = false,
        };
    }

    /// <summary>access(2)/faccessat without AT_EACCESS: checked as the real ids, with root's capabilities only when the real uid is 0.</summary>
    public Credentials ForAccessCheck() => this with
    {
        FsUid = RealUid, FsGid = RealGid, EffectiveUid = RealUid,
        EffectiveCaps = RealUid == 0 ? PermittedCaps : 0,
    };
}
