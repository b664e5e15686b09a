using AppKernel.Syscalls;
using AppKernel.Vfs;
using FileMode = AppKernel.Vfs.FileMode;

namespace AppKernel.Sentry.Fs.Overlay;

/// <summary>
/// An open overlay file: the layer's own description underneath, reporting the overlay inode.
/// A read-only description opened before copy-up moves to the upper copy once there is one,
/// so it reads what writers wrote (Linux does the same since 4.19).
/// </summary>
internal sealed class OverlayFileDescription(OverlayInode node, IFileOperations real, OpenFlags flags, bool onUpper) : IFileOperations
{
    private readonly object gate = new();
    private IFileOperations current = real;
    private readonly IFileOperations? lower = onUpper ? null : real;
    private bool released;
    private volatile bool switched = onUpper;

    public IInode? Inode => node;

    public bool IsStream => Current.IsStream;

    public WaitQueue? Waiters => Current.Waiters;

    public IMappable? Mappable => Current.Mappable;

    /// <summary>The description to use now: the upper copy's once the file has been copied up.</summary>
    private IFileOperations Current
    {
        get
        {
            if (!switched && node.Type == FileMode.Regular && node.Upper is { } upper)
            {
                lock (gate)
                {
                    if (!switched && !released)
                    {
                        // The lower description stays open until release: a read may still be using it.
                        Volatile.Write(ref current, upper.Open(flags & ~(OpenFlags.Truncate | OpenFlags.Create | OpenFlags.Exclusive)));
                        switched = true;
                    }
                }
            }

            return Volatile.Read(ref current);
        }
    }

    public long Read(Span<byte> buffer, ref long offset) => Current.Read(buffer, ref offset);

    public long Write(ReadOnlySpan<byte> buffer, ref long offset, bool append) => Current.Write(buffer, ref offset, append);

    public PollEvents Poll(PollEvents mask) => Current.Poll(mask);

    public long Ioctl(uint request, ulong argument, ISyscallContext context) => Current.Ioctl(request, argument, context);

    public void Sync() => Current.Sync();

    public void Allocate(int mode, long offset, long length) => Current.Allocate(mode, offset, length);

    public void Release()
    {
        IFileOperations first, second;
        lock (gate)
        {
            if (released)
            {
                return;
            }

            released = true;
            first = current;
            second = lower ?? current;
        }

        first.Release();
        if (!ReferenceEquals(first, second))
        {
            second.Release();
        }
    }
}
