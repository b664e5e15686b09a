using AppKernel.Sentry.Abi;
using AppKernel.Sentry.Kernel;
using AppKernel.Sentry.Kernel.Events;
using AppKernel.Sentry.Vfs;
using AppKernel.Syscalls;
using AppKernel.Vfs;

namespace AppKernel.Sentry.Syscalls;

/// <summary>
/// epoll_create, epoll_create1, epoll_ctl, epoll_wait, epoll_pwait, epoll_pwait2 over
/// <see cref="EpollInstance"/>. As on Linux, epoll_wait is never restarted: a signal gives EINTR
/// (even with SA_RESTART), and epoll_pwait's temporary mask lasts through the handler's delivery.
/// </summary>
internal static class EpollSyscalls
{
    private const int EPOLL_CTL_ADD = 1, EPOLL_CTL_DEL = 2, EPOLL_CTL_MOD = 3;
    private const int MaxEvents = int.MaxValue / EpollInstance.EventSize;
    private const ulong UserSpaceEnd = 0x7FFF_FFFF_F000; // TASK_SIZE_MAX: what access_ok accepts

    [Syscall(213)]
    public static SyscallResult EpollCreate(ISyscallContext c)
    {
        if ((int)c.Arguments.A0 <= 0)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        return Create(c.Task(), cloexec: false);
    }

    [Syscall(291)]
    public static SyscallResult EpollCreate1(ISyscallContext c)
    {
        var flags = (OpenFlags)(uint)c.Arguments.A0;
        if ((flags & ~OpenFlags.CloseOnExec) != 0)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        return Create(c.Task(), (flags & OpenFlags.CloseOnExec) != 0);
    }

    private static SyscallResult Create(KernelTask t, bool cloexec)
    {
        var instance = new EpollInstance();
        var description = new FileDescription(instance, null, OpenFlags.ReadWrite, "anon_inode:[eventpoll]");
        instance.Description = description;
        return SyscallResult.Ok(AnonymousFiles.Install(t, description, cloexec));
    }

    [Syscall(233, SupportLevel.Partial, Note = "EPOLLWAKEUP is accepted and ignored; the per-user watch limit (max_user_watches) is not enforced")]
    public static SyscallResult EpollCtl(ISyscallContext c)
    {
        var t = c.Task();
        var a = c.Arguments;
        int epfd = (int)a.A0, op = (int)a.A1, fd = (int)a.A2;
        var ev = default(LinuxEpollEvent);
        if (op != EPOLL_CTL_DEL)
        {
            ev = t.Mm.ReadValue<LinuxEpollEvent>(a.A3);
        }

        var epollFile = GetPollable(t, epfd);
        try
        {
            var target = GetPollable(t, fd);
            try
            {
                if (target.Operations.Waiters is null)
                {
                    return SyscallResult.Error(Errno.EPERM); // a file that cannot be polled (regular files, directories)
                }

                if (epollFile == target || epollFile.Operations is not EpollInstance epoll)
                {
                    return SyscallResult.Error(Errno.EINVAL);
                }

                if (op != EPOLL_CTL_DEL && (ev.Events & EpollInstance.EPOLLEXCLUSIVE) != 0)
                {
                    // Exclusive wake-ups are set up when added only, and not through nested epolls.
                    if (op == EPOLL_CTL_MOD ||
                        (op == EPOLL_CTL_ADD && (target.Operations is EpollInstance || (ev.Events & ~EpollInstance.ExclusiveOkBits) != 0)))
                    {
                        return SyscallResult.Error(Errno.EINVAL);
                    }
                }

                switch (op)
                {
                    case EPOLL_CTL_ADD:
                        epoll.Add(target, fd, ev.Events, ev.Data);
                        break;
                    case EPOLL_CTL_DEL:
                        epoll.Delete(target, fd);
                        break;
                    case EPOLL_CTL_MOD:
                        epoll.Modify(target, fd, ev.Events, ev.Data);
                        break;
                    default:
                        return SyscallResult.Error(Errno.EINVAL);
                }

                return SyscallResult.Zero;
            }
            finally
            {
                target.Release();
            }
        }
        finally
        {
            epollFile.Release();
        }
    }

    /// <summary>fdget: a referenced description; EBADF for a closed or O_PATH fd.</summary>
    private static FileDescription GetPollable(KernelTask t, int fd)
    {
        var description = t.Fds.GetReferenced(fd);
        if (description.IsPathOnly)
        {
            description.Release();
            throw ErrnoException.Of(Errno.EBADF);
        }

        return description;
    }

    [Syscall(232)]
    public static SyscallResult EpollWait(ISyscallContext c)
    {
        var a = c.Arguments;
        int timeout = (int)a.A3;
        return Wait(c.Task(), (int)a.A0, a.A1, (int)a.A2, MillisecondDeadline(timeout), timeout == 0);
    }

    [Syscall(281)]
    public static SyscallResult EpollPwait(ISyscallContext c)
    {
        var t = c.Task();
        var a = c.Arguments;
        ulong? old = TemporaryMask.Apply(t, a.A4, a.A5);
        int timeout = (int)a.A3;
        return WaitWithMask(t, old, (int)a.A0, a.A1, (int)a.A2, MillisecondDeadline(timeout), timeout == 0);
    }

    [Syscall(441)]
    public static SyscallResult EpollPwait2(ISyscallContext c)
    {
        var t = c.Task();
        var a = c.Arguments;
        var (deadline, zero) = PollSyscalls.ReadTimespecTimeout(t, a.A3);
        ulong? old = TemporaryMask.Apply(t, a.A4, a.A5);
        return WaitWithMask(t, old, (int)a.A0, a.A1, (int)a.A2, deadline, zero);
    }

    private static long MillisecondDeadline(int timeout) => timeout < 0 ? -1 : Kernel.Kernel.Now + timeout * 1_000_000L;

    private static SyscallResult WaitWithMask(KernelTask t, ulong? old, int epfd, ulong events, int max, long deadline, bool zero)
    {
        SyscallResult result;
        try
        {
            result = Wait(t, epfd, events, max, deadline, zero);
        }
        catch
        {
            TemporaryMask.Finish(t, old, interrupted: false);
            throw;
        }

        TemporaryMask.Finish(t, old, result.IsError && result.Errno == Errno.EINTR);
        return result;
    }

    /// <summary>do_epoll_wait and ep_poll.</summary>
    private static SyscallResult Wait(KernelTask t, int epfd, ulong events, int max, long deadline, bool zeroTimeout)
    {
        if (max <= 0 || max > MaxEvents)
        {
            return SyscallResult.Error(Errno.EINVAL);
        }

        if (events >= UserSpaceEnd || UserSpaceEnd - events < (ulong)max * EpollInstance.EventSize)
        {
            return SyscallResult.Error(Errno.EFAULT);
        }

        var file = t.Fds.GetReferenced(epfd);
        try
        {
            if (file.Operations is not EpollInstance epoll)
            {
                return SyscallResult.Error(file.IsPathOnly ? Errno.EBADF : Errno.EINVAL);
            }

            while (true)
            {
                int n = epoll.SendEvents(t.Mm, events, max);
                if (n > 0)
                {
                    return SyscallResult.Ok(n);
                }

                if (zeroTimeout)
                {
                    return SyscallResult.Zero;
                }

                try
                {
                    if (!t.WaitUntil(epoll.TaskWaiters, PollEvents.All, () => epoll.HasReady, deadline))
                    {
                        return SyscallResult.Zero;
                    }
                }
                catch (ErrnoException e) when (e.Errno == Errno.ERESTARTSYS)
                {
                    return SyscallResult.Error(Errno.EINTR);
                }
            }
        }
        finally
        {
            file.Release();
        }
    }
}
