namespace AppKernel.Syscalls;

/// <summary>
/// Middleware around syscalls: observe, deny with an errno, rewrite arguments, or replace
/// the call by not invoking <c>next</c>. Interceptors run in registration order.
/// </summary>
public interface ISyscallInterceptor
{
    /// <summary>
    /// The syscall numbers this interceptor wants, or <c>null</c> for all. Calls to other
    /// numbers bypass it at no cost, so audit plugins should name what they watch.
    /// </summary>
    IReadOnlyCollection<int>? Syscalls => null;

    /// <summary>Handles a call; call <paramref name="next"/> to continue the pipeline (a failed call comes back from it as an error result, not an exception).</summary>
    SyscallResult Intercept(ISyscallContext context, SyscallInvoker next);
}
