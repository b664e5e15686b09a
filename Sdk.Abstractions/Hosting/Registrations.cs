using AppKernel.Networking;
using AppKernel.Platform;
using AppKernel.Syscalls;

namespace AppKernel;

/// <summary>A platform made available to sandboxes under <paramref name="Name"/>.</summary>
/// <param name="Name">The name <see cref="SandboxOptions.Platform"/> selects it by.</param>
/// <param name="Factory">Creates the platform (once per service provider).</param>
public sealed record PlatformRegistration(string Name, Func<IServiceProvider, IPlatform> Factory);

/// <summary>The platform a builder's <c>UsePlatform</c> call chose; used when <see cref="SandboxOptions.Platform"/> is null.</summary>
/// <param name="Name">The platform's name.</param>
public sealed record DefaultPlatformSelection(string Name);

/// <summary>A syscall implementation added or replaced by a plugin.</summary>
/// <param name="Factory">Creates the handler.</param>
/// <param name="Source">Who registered it (an assembly name), for error messages.</param>
public sealed record SyscallHandlerRegistration(Func<IServiceProvider, ISyscallHandler> Factory, string Source);

/// <summary>A network stack type; one instance is created per sandbox.</summary>
/// <param name="Factory">Creates the stack for one sandbox.</param>
public sealed record NetworkStackRegistration(Func<IServiceProvider, INetworkStack> Factory);
