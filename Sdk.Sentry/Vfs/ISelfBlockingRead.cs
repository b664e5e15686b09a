using AppKernel.Sentry.Kernel;

namespace AppKernel.Sentry.Vfs;

/// <summary>
/// A file whose read(2) does its own waiting, because how long it waits is its own rule (a
/// terminal's VMIN/VTIME timers): read and readv hand it the task and the description's
/// O_NONBLOCK instead of retrying on EAGAIN. Its <see cref="AppKernel.Vfs.IFileOperations.Read"/>
/// stays the non-blocking form for splice and sendfile.
/// </summary>
internal interface ISelfBlockingRead
{
    /// <summary>Reads into <paramref name="buffer"/>, waiting as the file's rules say unless <paramref name="nonBlocking"/>.</summary>
    long Read(KernelTask task, Span<byte> buffer, bool nonBlocking);
}
