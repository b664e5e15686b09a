namespace AppKernel.Sentry.Kernel;

/// <summary>A task's user and group ids (credentials(7)). Immutable: setuid and friends replace the object.</summary>
internal sealed record Credentials(
    int RealUid, int EffectiveUid, int SavedUid, int FsUid,
    int RealGid, int EffectiveGid, int SavedGid, int FsGid,
    int[] Groups)
{
    public static Credentials ForUser(int uid, int gid) => new(uid, uid, uid, uid, gid, gid, gid, gid, []);

    /// <summary>Root in the sandbox's user namespace holds every capability there.</summary>
    public bool IsRoot => EffectiveUid == 0;

    /// <summary>True when <paramref name="gid"/> is the fs group or a supplementary group.</summary>
    public bool InGroup(int gid) => FsGid == gid || Array.IndexOf(Groups, gid) >= 0;
}
