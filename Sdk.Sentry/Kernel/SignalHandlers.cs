using AppKernel.Sentry.Abi;

namespace AppKernel.Sentry.Kernel;

/// <summary>The signal dispositions of a process; shared between tasks cloned with CLONE_SIGHAND.</summary>
internal sealed class SignalHandlers
{
    private readonly LinuxSigaction[] actions = new LinuxSigaction[Signals.NSIG + 1];

    public object Gate { get; } = new();

    public LinuxSigaction Get(int signal)
    {
        lock (Gate)
        {
            return actions[signal];
        }
    }

    public void Set(int signal, in LinuxSigaction action)
    {
        lock (Gate)
        {
            actions[signal] = action;
        }
    }

    /// <summary>A copy for a new process (fork without CLONE_SIGHAND).</summary>
    public SignalHandlers Clone()
    {
        var copy = new SignalHandlers();
        lock (Gate)
        {
            actions.CopyTo(copy.actions, 0);
        }

        return copy;
    }

    /// <summary>At execve: caught signals return to their default; ignored ones stay ignored.</summary>
    public SignalHandlers ForExec()
    {
        var copy = new SignalHandlers();
        lock (Gate)
        {
            for (int i = 1; i <= Signals.NSIG; i++)
            {
                if (actions[i].Handler == Signals.SIG_IGN)
                {
                    copy.actions[i] = new LinuxSigaction { Handler = Signals.SIG_IGN };
                }
            }
        }

        return copy;
    }
}
