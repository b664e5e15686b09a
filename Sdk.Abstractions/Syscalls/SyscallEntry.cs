namespace AppKernel.Syscalls;

/// <summary>One row of the syscall table.</summary>
/// <param name="Number">The x86-64 syscall number.</param>
/// <param name="Name">The syscall's name.</param>
/// <param name="Support">How complete the implementation is.</param>
/// <param name="Note">What is partial or which error is returned; empty when nothing needs saying.</param>
/// <param name="Handler">The implementation.</param>
/// <param name="Source">Who provides it: <c>Sentry</c>, or the plugin's assembly name.</param>
public sealed record SyscallEntry(int Number, string Name, SupportLevel Support, string Note, SyscallHandler Handler, string Source);
