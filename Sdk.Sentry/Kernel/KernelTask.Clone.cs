using AppKernel.Platform;
using AppKernel.Sentry.Abi;
using AppKernel.Sentry.Memory;
using AppKernel.Syscalls;
using static AppKernel.Sentry.Kernel.CloneArguments;

namespace AppKernel.Sentry.Kernel;

// clone: new threads, new processes (fork: copy-on-write memory), vfork.
internal sealed partial class KernelTask
{
    /// <summary>Set on a vfork child: the parent waits until it execs or exits.</summary>
    public ManualResetEventSlim? VforkDone { get; private set; }

    /// <summary>Creates a thread or a process as clone(2) says; returns the child's tid (ErrnoException on failure).</summary>
    public int Clone(in CloneArguments args)
    {
        Validate(args);
        var kernel = Kernel;
        var platform = kernel.Platform;

        // The child starts from the caller's exact CPU state, FP/AVX included.
        Context!.LoadExtendedState(Cpu);

        IAddressSpace? childSpace = null;
        MemoryManager? childMm = null;
        IExecutionContext? childContext = null;
        try
        {
            if (!args.Has(CLONE_VM))
            {
                childSpace = platform.CreateAddressSpace(kernel.MemoryFile);
                childMm = Mm.Fork(childSpace);
            }

            childContext = platform.CreateExecutionContext(childSpace ?? Mm.AddressSpace);
        }
        catch (Exception e) when (e is not ErrnoException)
        {
            childContext?.Dispose();
            if (childMm is not null)
            {
                childMm.RemoveUser();
            }
            else
            {
                childSpace?.Dispose();
            }

            kernel.Log.LogCloneFailure(Tid, e.Message);
            throw ErrnoException.Of(Errno.ENOMEM);
        }

        var fds = args.Has(CLONE_FILES) ? Fds.AddUser() : Fds.Fork();
        var fs = args.Has(CLONE_FS) ? Fs : Fs.Clone();
        KernelTask child;
        try
        {
            if (args.Has(CLONE_THREAD))
            {
                child = kernel.CreateThread(Group, fds, fs, Credentials);
            }
            else
            {
                var handlers = args.Has(CLONE_SIGHAND) ? Group.Handlers : Group.Handlers.Clone();
                if (args.Has(CLONE_CLEAR_SIGHAND))
                {
                    handlers = handlers.ForExec();
                }

                var parent = args.Has(CLONE_PARENT) ? Group.Parent : Group;
                child = kernel.CreateProcess(parent, fds, fs, Credentials, handlers, Group.Limits.Clone());
                var group = child.Group;
                group.Memory = childMm ?? Mm.AddUser();
                group.ExitSignal = args.ExitSignal;
                group.ExecutablePath = Group.ExecutablePath;
                group.ProcessGroup = Group.ProcessGroup;
                group.Session = Group.Session;
                group.Personality = Group.Personality;
                group.Dumpable = Group.Dumpable;
                group.OomScoreAdj = Group.OomScoreAdj;
                group.OomScoreAdjMin = Group.OomScoreAdjMin;
            }
        }
        catch
        {
            fds.RemoveUser();
            childContext.Dispose();
            childMm?.RemoveUser();
            throw;
        }

        child.Context = childContext;
        child.Cpu.CopyFrom(Cpu);
        ref var r = ref child.Cpu.Registers;
        r.Rax = 0;
        if (args.Stack != 0)
        {
            r.Rsp = args.Stack;
        }

        if (args.Has(CLONE_SETTLS))
        {
            r.FsBase = args.Tls;
        }

        child.SignalMask = SignalMask;
        child.Name = Name;
        child.NoNewPrivileges = NoNewPrivileges;
        child.Scheduling = Scheduling.ForChild();
        child.Uts = args.Has(CLONE_NEWUTS) ? UtsOrRoot.Copy() : Uts;
        child.AltStack = args.Has(CLONE_VM) && !args.Has(CLONE_VFORK) ? new LinuxStack { Flags = Signals.SS_DISABLE } : AltStack;
        if (args.Has(CLONE_CHILD_CLEARTID))
        {
            child.ClearChildTid = args.ChildTid;
        }

        if (args.Has(CLONE_PARENT_SETTID))
        {
            try
            {
                Mm.WriteValue(args.ParentTid, child.Tid);
            }
            catch (ErrnoException)
            {
                // Linux ignores a bad parent_tid pointer once the child exists.
            }
        }

        if (args.Has(CLONE_VFORK))
        {
            child.VforkDone = new ManualResetEventSlim(false);
        }

        if (args.Has(CLONE_PIDFD))
        {
            var pidfd = new Vfs.FileDescription(new PidFile(child.Group, null), null, AppKernel.Vfs.OpenFlags.ReadWrite, Syscalls.PidfdSyscalls.Name);
            int fd = Fds.Install(pidfd, closeOnExec: true, Group.Limits.OpenFilesLimit);
            Mm.WriteValue(args.PidFd, fd);
        }

        bool forked = childMm is not null;
        bool setTid = args.Has(CLONE_CHILD_SETTID);
        ulong childTidAddress = args.ChildTid;
        child.Start(() =>
        {
            // On the child's own thread: it becomes the one that drives its context, then mirrors its memory.
            child.Context!.LoadExtendedState(child.Cpu);
            if (forked)
            {
                child.Mm.MirrorAll();
            }

            if (setTid)
            {
                try
                {
                    child.Mm.WriteValue(childTidAddress, child.Tid);
                }
                catch (ErrnoException)
                {
                }
            }
        });

        if (child.VforkDone is { } done)
        {
            // The vfork parent sleeps until the child lets go of the shared memory (exec or exit).
            while (!done.Wait(50) && !killed)
            {
            }
        }

        return child.Tid;
    }

    /// <summary>This thread's UTS namespace (the sandbox's first one for tasks made before namespaces were tracked).</summary>
    public UtsNamespace UtsOrRoot => Uts ??= Kernel.RootUts;

    /// <summary>After exec (or at exit) a vfork child lets its parent continue.</summary>
    public void ReleaseVforkParent() => VforkDone?.Set();

    private void Validate(in CloneArguments args)
    {
        if ((args.Has(CLONE_NEWNS) || args.Has(CLONE_NEWUSER)) && args.Has(CLONE_FS))
        {
            throw ErrnoException.Of(Errno.EINVAL);
        }

        if (args.Has(CLONE_THREAD) && !args.Has(CLONE_SIGHAND))
        {
            throw ErrnoException.Of(Errno.EINVAL);
        }

        if (args.Has(CLONE_SIGHAND) && !args.Has(CLONE_VM))
        {
            throw ErrnoException.Of(Errno.EINVAL);
        }

        if (args.Has(CLONE_CLEAR_SIGHAND) && args.Has(CLONE_SIGHAND))
        {
            throw ErrnoException.Of(Errno.EINVAL);
        }

        if ((args.Has(CLONE_PARENT) || args.Has(CLONE_THREAD)) && Group.Pid == 1 && !args.Has(CLONE_THREAD))
        {
            // Init cannot make siblings.
            throw ErrnoException.Of(Errno.EINVAL);
        }

        if (args.Has(CLONE_PIDFD))
        {
            if (args.Has(CLONE_THREAD) || args.Has(CLONE_DETACHED))
            {
                throw ErrnoException.Of(Errno.EINVAL);
            }

            // The pidfd is written before the child exists: a bad pointer fails the clone (EFAULT),
            // and a full table too (EMFILE), as Linux checks both first.
            Mm.WriteValue(args.PidFd, -1);
            if (Fds.Count >= Group.Limits.OpenFilesLimit)
            {
                throw ErrnoException.Of(Errno.EMFILE);
            }
        }

        if ((args.Flags & NamespaceFlags) == CLONE_NEWUTS && Credentials.HasCapability(21 /* CAP_SYS_ADMIN */))
        {
            return; // a private host name is the one namespace a sandbox offers
        }

        if ((args.Flags & NamespaceFlags) != 0)
        {
            // The sandbox offers no nested namespaces; unprivileged callers get what Linux gives them.
            throw ErrnoException.Of(Credentials.IsRoot ? Errno.EINVAL : Errno.EPERM);
        }
    }
}
