using System.Runtime.InteropServices;
using AppKernel.Gofer.Native;

namespace AppKernel.Gofer.Client;

/// <summary>
/// A host file descriptor the Gofer handed over (SCM_RIGHTS). Reads and writes go straight to it
/// with pread/pwrite; it is closed when the last user lets go (SafeHandle reference counting
/// keeps a descriptor from being closed, and its number reused, during a call).
/// </summary>
internal sealed unsafe class HostFileHandle : SafeHandle
{
    public HostFileHandle(int fd, bool readable, bool writable)
        : base(-1, ownsHandle: true)
    {
        SetHandle(fd);
        Readable = readable;
        Writable = writable;
    }

    public bool Readable { get; }

    public bool Writable { get; }

    public override bool IsInvalid => handle < 0;

    /// <summary>pread until <paramref name="buffer"/> is full or end of file; returns the bytes read.</summary>
    public long ReadAt(Span<byte> buffer, long offset)
    {
        bool added = false;
        DangerousAddRef(ref added);
        try
        {
            int fd = (int)handle;
            long total = 0;
            fixed (byte* data = buffer)
            {
                while (total < buffer.Length)
                {
                    nint n = Host.Pread(fd, data + total, (nuint)(buffer.Length - total), offset + total);
                    if (n < 0)
                    {
                        int errno = Host.Errno;
                        if (errno == Host.EINTR)
                        {
                            continue;
                        }

                        if (total > 0)
                        {
                            break;
                        }

                        throw ErrnoException.Of((Errno)errno);
                    }

                    if (n == 0)
                    {
                        break;
                    }

                    total += n;
                }
            }

            return total;
        }
        finally
        {
            DangerousRelease();
        }
    }

    /// <summary>pwrite all of <paramref name="buffer"/> (short only when an error follows a partial write).</summary>
    public long WriteAt(ReadOnlySpan<byte> buffer, long offset)
    {
        bool added = false;
        DangerousAddRef(ref added);
        try
        {
            int fd = (int)handle;
            long total = 0;
            fixed (byte* data = buffer)
            {
                while (total < buffer.Length)
                {
                    nint n = Host.Pwrite(fd, data + total, (nuint)(buffer.Length - total), offset + total);
                    if (n < 0)
                    {
                        int errno = Host.Errno;
                        if (errno == Host.EINTR)
                        {
                            continue;
                        }

                        if (total > 0)
                        {
                            break;
                        }

                        throw ErrnoException.Of((Errno)errno);
                    }

                    total += n;
                }
            }

            return total;
        }
        finally
        {
            DangerousRelease();
        }
    }

    /// <summary>fstat of the descriptor.</summary>
    public Host.Stat Stat()
    {
        bool added = false;
        DangerousAddRef(ref added);
        try
        {
            Host.Stat stat;
            if (Host.Fstat((int)handle, &stat) != 0)
            {
                throw ErrnoException.Of((Errno)Host.Errno);
            }

            return stat;
        }
        finally
        {
            DangerousRelease();
        }
    }

    /// <summary>ftruncate.</summary>
    public void Truncate(long size)
    {
        bool added = false;
        DangerousAddRef(ref added);
        try
        {
            while (Host.Ftruncate((int)handle, size) != 0)
            {
                int errno = Host.Errno;
                if (errno != Host.EINTR)
                {
                    throw ErrnoException.Of((Errno)errno);
                }
            }
        }
        finally
        {
            DangerousRelease();
        }
    }

    /// <summary>fallocate with the program's mode (the caller has checked which modes it passes on).</summary>
    public void Allocate(int mode, long offset, long length)
    {
        bool added = false;
        DangerousAddRef(ref added);
        try
        {
            while (Host.Fallocate((int)handle, mode, offset, length) != 0)
            {
                int errno = Host.Errno;
                if (errno != Host.EINTR)
                {
                    throw ErrnoException.Of((Errno)errno);
                }
            }
        }
        finally
        {
            DangerousRelease();
        }
    }

    /// <summary>fsync, or fdatasync when <paramref name="dataOnly"/>.</summary>
    public void Sync(bool dataOnly)
    {
        bool added = false;
        DangerousAddRef(ref added);
        try
        {
            int result = dataOnly ? Host.Fdatasync((int)handle) : Host.Fsync((int)handle);
            if (result != 0)
            {
                int errno = Host.Errno;
                if (errno != (int)AppKernel.Errno.EINVAL)
                {
                    throw ErrnoException.Of((Errno)errno);
                }
            }
        }
        finally
        {
            DangerousRelease();
        }
    }

    protected override bool ReleaseHandle() => Host.Close((int)handle) == 0;
}
