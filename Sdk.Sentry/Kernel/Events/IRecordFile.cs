namespace AppKernel.Sentry.Kernel.Events;

/// <summary>
/// A file whose read and write move one record per call and block on their own exact condition
/// (eventfd, timerfd, signalfd): <see cref="Syscalls.FileIo"/> calls these once instead of looping
/// over chunks, and passes the description's blocking mode. A blocking wait goes through
/// <see cref="KernelTask.WaitUntil"/>, so signals interrupt it with ERESTARTSYS.
/// </summary>
internal interface IRecordFile
{
    /// <summary>Fills the front of <paramref name="buffer"/> and returns the bytes filled; EAGAIN when <paramref name="nonBlocking"/> and nothing is there.</summary>
    long Read(KernelTask task, Span<byte> buffer, bool nonBlocking);

    /// <summary>Consumes the record in <paramref name="buffer"/> (the write's bytes, at most 9: enough to tell "too long") and returns its size.</summary>
    long Write(KernelTask task, ReadOnlySpan<byte> buffer, bool nonBlocking);
}
