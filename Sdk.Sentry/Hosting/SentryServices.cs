using System.Collections.Concurrent;
using AppKernel.Networking;
using AppKernel.Platform;
using AppKernel.Sentry.Syscalls;
using AppKernel.Syscalls;
using AppKernel.Vfs;
using Microsoft.Extensions.Logging;

namespace AppKernel.Sentry.Hosting;

/// <summary>
/// What every sandbox of one service provider shares: the composed syscall table and
/// interceptor pipeline, the registered platforms (one instance each), filesystem types and
/// network stacks. Built once; composition errors (two plugins replacing one syscall) surface here.
/// </summary>
internal sealed class SentryServices
{
    private readonly IServiceProvider services;
    private readonly Dictionary<string, PlatformRegistration> platforms = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, IPlatform> platformInstances = new(StringComparer.Ordinal);

    public SentryServices(
        IServiceProvider services,
        IEnumerable<SyscallHandlerRegistration> handlerRegistrations,
        IEnumerable<ISyscallInterceptor> interceptors,
        IEnumerable<PlatformRegistration> platformRegistrations,
        IEnumerable<IFileSystemType> fileSystemTypes,
        IEnumerable<NetworkStackRegistration> networkStacks,
        ILoggerFactory loggerFactory)
    {
        this.services = services;
        var handlers = handlerRegistrations.Select(r => (r.Factory(services), r.Source)).ToList();
        Table = SyscallTable.Build(handlers);
        Interceptors = interceptors.ToArray();
        Dispatcher = new SyscallDispatcher(Table, Interceptors);
        foreach (var registration in platformRegistrations)
        {
            platforms[registration.Name] = registration;
        }

        FileSystemTypes = fileSystemTypes.ToDictionary(t => t.Name, StringComparer.Ordinal);
        NetworkStacks = networkStacks.ToArray();
        LoggerFactory = loggerFactory;
    }

    public SyscallTable Table { get; }

    public SyscallDispatcher Dispatcher { get; }

    public IReadOnlyList<ISyscallInterceptor> Interceptors { get; }

    public IReadOnlyDictionary<string, IFileSystemType> FileSystemTypes { get; }

    public IReadOnlyList<NetworkStackRegistration> NetworkStacks { get; }

    public ILoggerFactory LoggerFactory { get; }

    public IServiceProvider Services => services;

    /// <summary>The platform registered as <paramref name="name"/>, created on first use.</summary>
    public IPlatform GetPlatform(string name)
    {
        return platformInstances.GetOrAdd(name, n =>
        {
            if (!platforms.TryGetValue(n, out var registration))
            {
                throw new SandboxConfigurationException($"Platform '{n}' is not registered.");
            }

            return registration.Factory(services);
        });
    }
}
