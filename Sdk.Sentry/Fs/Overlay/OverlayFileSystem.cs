using AppKernel.Memory;
using AppKernel.Sentry.Fs.Tmpfs;
using AppKernel.Vfs;
using FileMode = AppKernel.Vfs.FileMode;

namespace AppKernel.Sentry.Fs.Overlay;

/// <summary>
/// An overlay of a read-only lower filesystem and a writable upper one (a tmpfs): the sandbox's
/// default root. Lookups see the upper entry over the lower one; changes copy the object (and
/// its parent directories) up first. Removals of lower entries leave whiteouts in the upper
/// layer (character devices 0:0, never shown), and a directory created where a lower one was
/// removed is marked opaque (<c>trusted.overlay.opaque=y</c>) so the old lower entries stay hidden.
/// </summary>
/// <remarks>
/// <para>Behaviour follows Linux's overlayfs without redirect_dir, index or metacopy: renaming a
/// directory that has a lower part fails with EXDEV (programs such as mv then copy); copy-up
/// breaks hard links between lower files; merged directories report a link count of 1.</para>
/// <para>Inode numbers are the overlay's own, assigned on first sight of each lower or upper inode
/// and kept across copy-up (the copy is recorded as having the same number), so st_ino is
/// stable and unique within the overlay.</para>
/// <para>A file opened read-only before it is copied up keeps its description, but reads switch to
/// the upper copy once there is one (as Linux does since 4.19): every description sees the
/// current data. Mappings made before copy-up keep the lower pages.</para>
/// <para>Thread-safe: one lock serializes the overlay's namespace operations and copy-up; reads
/// and writes through open files do not take it.</para>
/// </remarks>
public sealed class OverlayFileSystem : IFileSystem
{
    /// <summary>OVERLAYFS_SUPER_MAGIC, what statfs reports as <c>f_type</c>.</summary>
    public const long Magic = 0x794C7630;

    internal const string PrivateXattrPrefix = "trusted.overlay.";
    internal const string OpaqueXattr = "trusted.overlay.opaque";

    private readonly Dictionary<ulong, ulong> lowerInos = [];
    private readonly Dictionary<ulong, ulong> upperInos = [];
    private readonly bool releaseLower;
    private readonly OverlayInode root;
    private ulong nextIno;
    private long tempCounter;

    /// <summary>Stacks <paramref name="upper"/> over <paramref name="lower"/>.</summary>
    /// <param name="lower">The read-only layer; it is never written.</param>
    /// <param name="upper">
    /// The writable layer, empty at first and used by nothing else: a tmpfs, or any filesystem
    /// that keeps character device nodes and <c>trusted.*</c> extended attributes.
    /// </param>
    /// <param name="releaseLower">Whether <see cref="Release"/> also releases the lower layer (the upper one always is).</param>
    public OverlayFileSystem(IFileSystem lower, IFileSystem upper, bool releaseLower = true)
    {
        ArgumentNullException.ThrowIfNull(lower);
        ArgumentNullException.ThrowIfNull(upper);
        Lower = lower;
        Upper = upper;
        this.releaseLower = releaseLower;

        // The merged root looks like the lower root: copy its attributes onto the empty upper root.
        var lowerRoot = lower.Root.GetAttributes();
        upper.Root.SetAttributes(new AttributeUpdate(
            AttributeMask.Mode | AttributeMask.Uid | AttributeMask.Gid | AttributeMask.AccessTime | AttributeMask.ModifyTime,
            lowerRoot.Mode & FileMode.PermissionMask, lowerRoot.Uid, lowerRoot.Gid, 0, lowerRoot.AccessTime, lowerRoot.ModifyTime));
        lock (Gate)
        {
            ulong ino = InoForLower(lowerRoot.Ino);
            RecordCopyUp(upper.Root.GetAttributes().Ino, ino);
            root = new OverlayInode(this, null, string.Empty, FileMode.Directory, ino, upper.Root, lower.Root, opaque: false);
        }
    }

    /// <summary>An overlay whose upper layer is a new tmpfs in <paramref name="memoryFile"/>: what the sandbox's root is by default.</summary>
    /// <param name="lower">The read-only layer (the Gofer's view of the root filesystem).</param>
    /// <param name="memoryFile">Where the upper layer keeps file data.</param>
    /// <param name="upperOptions">Limits of the upper layer; tmpfs defaults when null.</param>
    /// <param name="releaseLower">Whether <see cref="Release"/> also releases the lower layer.</param>
    public static OverlayFileSystem CreateOverTmpfs(IFileSystem lower, IMemoryFile memoryFile, TmpfsOptions? upperOptions = null, bool releaseLower = true) =>
        new(lower, new TmpfsFileSystem(memoryFile, upperOptions), releaseLower);

    /// <summary>The read-only layer.</summary>
    public IFileSystem Lower { get; }

    /// <summary>The writable layer (whiteouts and opaque markers included: not for programs' eyes).</summary>
    public IFileSystem Upper { get; }

    /// <inheritdoc/>
    public string TypeName => "overlay";

    /// <inheritdoc/>
    public IInode Root => root;

    /// <summary>Serializes namespace changes and copy-up.</summary>
    internal object Gate { get; } = new();

    /// <summary>The upper layer's figures under the overlay's magic, as Linux reports.</summary>
    public FileSystemStatistics GetStatistics() => Upper.GetStatistics() with { Type = Magic };

    /// <inheritdoc/>
    public void Release()
    {
        Upper.Release();
        if (releaseLower)
        {
            Lower.Release();
        }
    }

    /// <summary>The overlay inode number of a lower inode (under <see cref="Gate"/>).</summary>
    internal ulong InoForLower(ulong lowerIno)
    {
        if (!lowerInos.TryGetValue(lowerIno, out ulong ino))
        {
            ino = ++nextIno;
            lowerInos.Add(lowerIno, ino);
        }

        return ino;
    }

    /// <summary>The overlay inode number of an upper inode (under <see cref="Gate"/>); a copy-up's is its origin's.</summary>
    internal ulong InoForUpper(ulong upperIno)
    {
        if (!upperInos.TryGetValue(upperIno, out ulong ino))
        {
            ino = ++nextIno;
            upperInos.Add(upperIno, ino);
        }

        return ino;
    }

    /// <summary>Records that the upper inode <paramref name="upperIno"/> is a copy of the overlay inode <paramref name="ino"/>.</summary>
    internal void RecordCopyUp(ulong upperIno, ulong ino) => upperInos[upperIno] = ino;

    /// <summary>A name for a short-lived upper entry (under <see cref="Gate"/>).</summary>
    internal string TempName() => $"#overlay.tmp.{++tempCounter}";
}
