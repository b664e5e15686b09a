using AppKernel.Platform.Kvm.Native;

namespace AppKernel.Platform.Kvm;

/// <summary>
/// The signal that makes a vCPU's host thread leave KVM_RUN (it returns EINTR). Its handler is a single
/// <c>ret</c> in a page of its own: no managed code runs in signal context.
/// </summary>
internal static unsafe class KickSignal
{
    private static readonly object Gate = new();
    private static bool installed;

    public static int Number => LibC.SIGKICK;

    public static void Install()
    {
        lock (Gate)
        {
            if (installed)
            {
                return;
            }

            LibC.SigActionStruct old;
            if (LibC.SigAction(LibC.SIGKICK, null, &old) != 0)
            {
                throw new PlatformUnavailableException($"sigaction failed: {LibC.Describe(LibC.Errno)}");
            }

            if (old.Handler == 0)
            {
                // SIG_DFL would end the process: install a handler that only returns.
                nint page = LibC.Mmap(0, 4096, LibC.PROT_READ | LibC.PROT_WRITE, LibC.MAP_PRIVATE | LibC.MAP_ANONYMOUS, -1, 0);
                if (page == LibC.MapFailed)
                {
                    throw new PlatformUnavailableException($"mmap for the kick signal handler failed: {LibC.Describe(LibC.Errno)}");
                }

                *(byte*)page = 0xC3; // ret
                LibC.Mprotect(page, 4096, LibC.PROT_READ | LibC.PROT_EXEC);
                var action = new LibC.SigActionStruct { Handler = page };
                if (LibC.SigAction(LibC.SIGKICK, &action, null) != 0)
                {
                    throw new PlatformUnavailableException($"sigaction failed: {LibC.Describe(LibC.Errno)}");
                }
            }
            else if (old.Handler == 1)
            {
                throw new PlatformUnavailableException($"signal {LibC.SIGKICK} is ignored in this process; the KVM platform needs it to interrupt vCPUs");
            }

            installed = true;
        }
    }

    /// <summary>Sends the kick to one host thread of this process.</summary>
    public static void Send(int hostThreadId) => LibC.Tgkill(ProcessId, hostThreadId, LibC.SIGKICK);

    private static readonly int ProcessId = LibC.GetPid();
}
