using AppKernel.Syscalls;

namespace AppKernel.Sentry.Syscalls;

/// <summary>
/// Runs one syscall through the interceptor pipeline to its handler. The pipeline is built
/// once per syscall number from the interceptors that asked for it, so a number no
/// interceptor watches goes straight to its handler.
/// </summary>
internal sealed class SyscallDispatcher
{
    private readonly SyscallTable table;
    private readonly SyscallInvoker[] invokers;

    public SyscallDispatcher(SyscallTable table, IReadOnlyList<ISyscallInterceptor> interceptors)
    {
        this.table = table;
        invokers = new SyscallInvoker[table.Entries.Count];
        for (int number = 0; number < invokers.Length; number++)
        {
            SyscallInvoker invoker = table.Entries[number].Handler.Invoke;
            bool intercepted = false;
            for (int i = interceptors.Count - 1; i >= 0; i--)
            {
                var interceptor = interceptors[i];
                if (interceptor.Syscalls is { } wanted && !wanted.Contains(number))
                {
                    continue;
                }

                if (!intercepted)
                {
                    // An interceptor may rewrite the number: the last stage looks the handler up again.
                    invoker = InvokeByCurrentNumber;
                    intercepted = true;
                }

                var next = invoker;
                invoker = context => interceptor.Intercept(context, next);
            }

            invokers[number] = invoker;
        }
    }

    public ISyscallTable Table => table;

    /// <summary>Dispatches the call in <paramref name="context"/>; errors thrown as <see cref="ErrnoException"/> become -errno.</summary>
    public SyscallResult Dispatch(ISyscallContext context)
    {
        int number = context.Number;
        if ((uint)number >= (uint)invokers.Length)
        {
            return SyscallResult.Error(Errno.ENOSYS);
        }

        try
        {
            return invokers[number](context);
        }
        catch (ErrnoException e)
        {
            return SyscallResult.Error(e.Errno);
        }
    }

    /// <summary>
    /// The last stage of an intercepted call: the handler of the (possibly rewritten) number, whose
    /// errors come back to the interceptors as -errno results, never as exceptions, so an
    /// interceptor that logs after <c>next</c> sees failed calls too.
    /// </summary>
    private SyscallResult InvokeByCurrentNumber(ISyscallContext context)
    {
        int number = context.Number;
        if ((uint)number >= (uint)table.Entries.Count)
        {
            return SyscallResult.Error(Errno.ENOSYS);
        }

        try
        {
            return table.Entries[number].Handler(context);
        }
        catch (ErrnoException e)
        {
            return SyscallResult.Error(e.Errno);
        }
    }
}
