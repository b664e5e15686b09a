using AppKernel.Sentry.Kernel;

namespace AppKernel.Sentry.Hosting;

/// <summary>A program started in a sandbox, as the host sees it.</summary>
internal sealed class SandboxProcess : ISandboxProcess
{
    private readonly Sandbox sandbox;
    private readonly ThreadGroup group;
    private readonly HostStreams streams;
    private int disposed;

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

    public bool HasExited => group.Exited.IsCompleted;

    public ResourceUsage ResourceUsage
    {
        get
        {
            var usage = SampleUsage();
            return usage with { LimitHit = sandbox.LimitHit };
        }
    }

    /// <summary>CPU time and peak memory of the process and the children it reaped (no limit looked at).</summary>
    internal ResourceUsage SampleUsage()
    {
        var timers = group.Timers;
        var own = timers.CpuTime;
        var children = timers.ChildrenCpuTime;
        long peak = (long)Math.Max(timers.MaxResidentBytes, timers.ChildrenMaxResidentBytes);
        return new ResourceUsage(
            TimeSpan.FromTicks((own.User + children.User) / 100),
            TimeSpan.FromTicks((own.System + children.System) / 100),
            peak,
            SandboxLimit.None);
    }

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

    /// <summary>Closes the host's ends of the stdio pipes (the sandbox does it when it goes).</summary>
    internal void CloseStreams() => streams.Dispose();

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref disposed, 1) != 0)
        {
            return;
        }

        if (!group.Exited.IsCompleted)
        {
            Kill();
            try
            {
                await group.Exited.WaitAsync(TimeSpan.FromSeconds(10)).ConfigureAwait(false);
            }
            catch (TimeoutException)
            {
            }
        }

        streams.Dispose();
    }
}
