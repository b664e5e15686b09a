using AppKernel.Sentry.Kernel;

namespace AppKernel.Sentry.Hosting;

/// <summary>A program started in a sandbox, as the host sees it.</summary>
internal sealed class SandboxProcess : ISandboxProcess
{
    private readonly Sandbox sandbox;
    private readonly ThreadGroup group;
    private readonly HostStreams streams;

    public SandboxProcess(Sandbox sandbox, ThreadGroup group, HostStreams streams)
    {
        this.sandbox = sandbox;
        this.group = group;
        this.streams = streams;
    }

    public int Pid => group.Pid;

    public Stream? StandardInput => streams.Input;

    public Stream? StandardOutput => streams.Output;

    public Stream? StandardError => streams.Error;

    public async Task<ExitStatus> WaitForExitAsync(CancellationToken cancellationToken = default)
    {
        var status = await group.Exited.WaitAsync(cancellationToken).ConfigureAwait(false);
        if (sandbox.Kernel.Failure is { } failure)
        {
            throw new SandboxFailedException(failure);
        }

        return status;
    }

    public void Kill() => group.BeginExit(ExitStatus.Killed(Abi.Signals.SIGKILL));

    public void Signal(int signal)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(signal, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(signal, Abi.Signals.NSIG);
        Syscalls.SignalSyscalls.SendToGroup(group, SignalInfo.User(signal, pid: 0, uid: 0));
    }

    public async ValueTask DisposeAsync()
    {
        Kill();
        try
        {
            await group.Exited.WaitAsync(TimeSpan.FromSeconds(10)).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
        }

        streams.Dispose();
    }
}
