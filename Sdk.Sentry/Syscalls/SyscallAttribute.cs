using AppKernel.Syscalls;

namespace AppKernel.Sentry.Syscalls;

/// <summary>
/// Declares a built-in syscall handler: a static method <c>SyscallResult M(ISyscallContext)</c>.
/// The table, the support level and the compatibility page (docs/syscalls.md) all come from here.
/// </summary>
[AttributeUsage(AttributeTargets.Method, AllowMultiple = true)]
internal sealed class SyscallAttribute(int number, SupportLevel support = SupportLevel.Full) : Attribute
{
    public int Number { get; } = number;

    public SupportLevel Support { get; } = support;

    /// <summary>What is partial, or which error is returned.</summary>
    public string Note { get; init; } = "";
}
