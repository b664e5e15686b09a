using AppKernel.Vfs;

namespace AppKernel.Sentry.Kernel;

/// <summary>
/// A pidfd (pidfd_open, and clone's CLONE_PIDFD): a file that names a process, or with
/// PIDFD_THREAD one thread, for as long as it is open, whatever pids are reused meanwhile. It polls
/// readable (POLLIN | POLLRDNORM) once the process has exited, with POLLHUP once it is gone from
/// the PID namespace (reaped); read and write give EINVAL.
/// </summary>
internal sealed class PidFile : IFileOperations
{
    public PidFile(ThreadGroup group, KernelTask? thread)
    {
        Group = group;
        Thread = thread;

        // Pollers wake when the process ends (a thread pidfd's thread ends with it at the latest).
        group.Exited.ContinueWith(
            static (_, state) => ((WaitQueue)state!).Notify(PollEvents.In | PollEvents.ReadNormal | PollEvents.HangUp),
            Waiters, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
    }

    /// <summary>The process the pidfd names.</summary>
    public ThreadGroup Group { get; }

    /// <summary>For PIDFD_THREAD: the thread it names; null for a process pidfd.</summary>
    public KernelTask? Thread { get; }

    public IInode? Inode => null;

    /// <summary>No offset: lseek gives ESPIPE.</summary>
    public bool IsStream => true;

    public WaitQueue Waiters { get; } = new();

    WaitQueue? IFileOperations.Waiters => Waiters;

    /// <summary>True once the process (or the thread) has exited.</summary>
    public bool HasExited => Thread is { } thread ? Group.Kernel.Pids.FindTask(thread.Tid) != thread || Group.Exited.IsCompleted : Group.Exited.IsCompleted;

    /// <summary>True once the process is gone from the PID namespace (reaped), so signals find nobody (ESRCH).</summary>
    public bool IsGone => Thread is { } thread
        ? Group.Kernel.Pids.FindTask(thread.Tid) != thread
        : Group.Kernel.Pids.FindGroup(Group.Pid) != Group;

    public PollEvents Poll(PollEvents mask)
    {
        if (!HasExited)
        {
            return PollEvents.None;
        }

        var ready = PollEvents.In | PollEvents.ReadNormal | (IsGone ? PollEvents.HangUp : PollEvents.None);
        return ready & (mask | PollEvents.HangUp | PollEvents.Error);
    }
}
