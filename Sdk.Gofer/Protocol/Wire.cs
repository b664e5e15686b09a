namespace AppKernel.Gofer.Protocol;

/// <summary>
/// The Gofer wire protocol (version <see cref="Version"/>).
/// </summary>
/// <remarks>
/// <para>Transport: AF_UNIX SOCK_SEQPACKET sockets, so every message arrives whole and a file
/// descriptor passed with SCM_RIGHTS travels with the one response it belongs to. The first
/// socket is inherited by the Gofer at spawn; more are added by the <see cref="Op.Connect"/>
/// request (the new socket's end travels as SCM_RIGHTS), giving the client a pool of
/// connections so that several Sentry threads have requests in flight at once.</para>
/// <para>Every message starts with a 16-byte little-endian header:
/// <c>u32 size</c> (whole message, header included), <c>u32 tag</c> (chosen by the client,
/// echoed in the response), <c>u16 op</c>, <c>u16 flags</c> (<see cref="FlagHasFd"/> on a
/// response that carries a descriptor), <c>i32 status</c> (0 in requests; 0 or a positive
/// Linux errno in responses, followed by an optional UTF-8 diagnostic on errors).
/// The payload follows; integers are little-endian, strings are <c>u16 length + UTF-8</c>.</para>
/// <para>The first exchange on the first socket is <see cref="Op.Version"/>: nothing else is
/// answered before it.</para>
/// </remarks>
internal static class Wire
{
    /// <summary>The protocol version this build speaks.</summary>
    public const uint Version = 2;

    /// <summary>Bytes in a message header.</summary>
    public const int HeaderSize = 16;

    /// <summary>The largest message either side sends or accepts.</summary>
    public const int MaxMessage = 64 * 1024;

    /// <summary>The most bytes of host directory entries one <see cref="Op.ReadDir"/> returns.</summary>
    public const int MaxReadDirBytes = 32 * 1024;

    /// <summary>Longest file name (NAME_MAX).</summary>
    public const int MaxName = 255;

    /// <summary>Longest symlink target or path (PATH_MAX - 1).</summary>
    public const int MaxPath = 4095;

    /// <summary>Response flag: the message carries one descriptor (SCM_RIGHTS).</summary>
    public const ushort FlagHasFd = 1;

    /// <summary><see cref="Op.ReadDir"/> flag: every entry carries its attributes (readdir-plus).</summary>
    public const uint ReadDirAttributes = 1;

    /// <summary>Most nodes one <see cref="Op.Release"/> may name.</summary>
    public const int MaxReleaseBatch = 4096;
}

/// <summary>The requests of the protocol. Payloads are documented per member (request → response).</summary>
internal enum Op : ushort
{
    /// <summary>u32 version → u32 version, u32 root count, per root u8 read-only. Must come first.</summary>
    Version = 1,

    /// <summary>(SCM_RIGHTS: a new SOCK_SEQPACKET socket) → empty. The Gofer serves the socket on a new thread.</summary>
    Connect = 2,

    /// <summary>u32 count, u64 node × count → empty. Forgets nodes the client no longer uses.</summary>
    Release = 3,

    /// <summary>Probes the Gofer's confinement: → u32 count, (string name, i32 errno) × count.</summary>
    SelfCheck = 4,

    /// <summary>u32 root → u64 node, attributes.</summary>
    Attach = 10,

    /// <summary>u64 directory, string name → u64 node, attributes (ENOENT when absent).</summary>
    Walk = 11,

    /// <summary>u64 node → attributes.</summary>
    GetAttr = 12,

    /// <summary>u64 node, u32 open flags → attributes (+ SCM_RIGHTS: the host descriptor).</summary>
    Open = 13,

    /// <summary>
    /// u64 directory, i64 host cookie, u32 max bytes, u32 flags → u32 count, (u64 ino, i64 next
    /// host cookie, u8 d_type, string name[, u8 has attributes, attributes]) × count, u8 end of
    /// directory. With <see cref="Wire.ReadDirAttributes"/> each entry carries the bracketed part
    /// (attributes only when the name still names the listed inode).
    /// </summary>
    ReadDir = 14,

    /// <summary>u64 node → string target.</summary>
    ReadLink = 15,

    /// <summary>u64 node → i64 type, bsize, blocks, bfree, bavail, files, ffree, namelen.</summary>
    StatFs = 16,

    /// <summary>
    /// <see cref="Walk"/> then <see cref="Open"/> of the new node in one round trip: u64 directory,
    /// string name, u32 open flags → u64 node, attributes, i32 open status, [attributes] (+ SCM_RIGHTS
    /// when the open succeeded). The walk's failure is the message's status; the open's travels in
    /// the payload, so that the node is the client's either way.
    /// </summary>
    WalkOpen = 17,

    /// <summary>
    /// <see cref="Walk"/> then <see cref="ReadDir"/> of the new node in one round trip: u64 directory,
    /// string name, i64 host cookie, u32 max bytes, u32 flags → u64 node, attributes, i32 listing
    /// status, [the <see cref="ReadDir"/> answer].
    /// </summary>
    WalkReadDir = 18,

    /// <summary>u64 directory, string name, u32 mode, u32 open flags, i32 uid, i32 gid → u64 node, attributes (+ SCM_RIGHTS: the opened file).</summary>
    Create = 20,

    /// <summary>u64 directory, string name, u32 mode, i32 uid, i32 gid → u64 node, attributes.</summary>
    Mkdir = 21,

    /// <summary>u64 directory, string name, u32 mode (S_IFIFO, S_IFSOCK or S_IFREG), u64 rdev, i32 uid, i32 gid → u64 node, attributes.</summary>
    Mknod = 22,

    /// <summary>u64 directory, string name, string target, i32 uid, i32 gid → u64 node, attributes.</summary>
    Symlink = 23,

    /// <summary>u64 directory, string name, u64 target node → attributes of the target.</summary>
    Link = 24,

    /// <summary>u64 directory, string name, u32 flags (AT_REMOVEDIR) → u64 ino of the removed entry.</summary>
    Unlink = 25,

    /// <summary>u64 old directory, string old name, u64 new directory, string new name, u32 flags → u64 moved ino, u64 replaced ino (0 for none).</summary>
    Rename = 26,

    /// <summary>u64 node, u32 mask, u32 mode, i32 uid, i32 gid, i64 size, i64 atime s, i64 atime ns, i64 mtime s, i64 mtime ns → attributes.</summary>
    SetAttr = 27,
}

/// <summary>Attribute mask bits of <see cref="Op.SetAttr"/> (the same values as <see cref="Vfs.AttributeMask"/>).</summary>
[Flags]
internal enum WireSetAttr : uint
{
    None = 0,
    Mode = 1,
    Uid = 2,
    Gid = 4,
    Size = 8,
    AccessTime = 16,
    ModifyTime = 32,
    AccessTimeNow = 64,
    ModifyTimeNow = 128,
}
