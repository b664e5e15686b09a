using AppKernel.Networking;
using AppKernel.Platform;
using AppKernel.Syscalls;
using AppKernel.Vfs;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace AppKernel;

/// <summary>The builder calls every plugin uses to register its parts.</summary>
public static class AppKernelBuilderExtensions
{
    /// <summary>Makes <typeparamref name="TPlatform"/> available under <paramref name="name"/> without selecting it.</summary>
    public static IAppKernelBuilder AddPlatform<TPlatform>(this IAppKernelBuilder builder, string name)
        where TPlatform : class, IPlatform
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        builder.Services.TryAddSingleton<TPlatform>();
        builder.Services.AddSingleton(new PlatformRegistration(name, sp => sp.GetRequiredService<TPlatform>()));
        return builder;
    }

    /// <summary>Registers <typeparamref name="TPlatform"/> under <paramref name="name"/> and selects it unless the options name another.</summary>
    public static IAppKernelBuilder UsePlatform<TPlatform>(this IAppKernelBuilder builder, string name)
        where TPlatform : class, IPlatform
    {
        builder.AddPlatform<TPlatform>(name);
        builder.Services.Replace(ServiceDescriptor.Singleton(new DefaultPlatformSelection(name)));
        return builder;
    }

    /// <summary>Adds an interceptor to the syscall pipeline, after those already added.</summary>
    public static IAppKernelBuilder AddSyscallInterceptor<TInterceptor>(this IAppKernelBuilder builder)
        where TInterceptor : class, ISyscallInterceptor
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Services.AddSingleton<ISyscallInterceptor, TInterceptor>();
        return builder;
    }

    /// <summary>Adds an interceptor instance to the syscall pipeline.</summary>
    public static IAppKernelBuilder AddSyscallInterceptor(this IAppKernelBuilder builder, ISyscallInterceptor interceptor)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(interceptor);
        builder.Services.AddSingleton(interceptor);
        return builder;
    }

    /// <summary>Adds or replaces one syscall's implementation with <typeparamref name="THandler"/>.</summary>
    public static IAppKernelBuilder AddSyscallHandler<THandler>(this IAppKernelBuilder builder)
        where THandler : class, ISyscallHandler
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Services.TryAddSingleton<THandler>();
        builder.Services.AddSingleton(new SyscallHandlerRegistration(
            sp => sp.GetRequiredService<THandler>(),
            typeof(THandler).Assembly.GetName().Name ?? typeof(THandler).FullName!));
        return builder;
    }

    /// <summary>Adds or replaces one syscall's implementation with a delegate.</summary>
    public static IAppKernelBuilder AddSyscallHandler(
        this IAppKernelBuilder builder,
        int number,
        string name,
        SyscallHandler handler,
        SupportLevel support = SupportLevel.Full)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(handler);
        var adapter = new DelegateSyscallHandler(number, name, support, handler);
        string source = handler.Method.DeclaringType?.Assembly.GetName().Name ?? name;
        builder.Services.AddSingleton(new SyscallHandlerRegistration(_ => adapter, source));
        return builder;
    }

    /// <summary>Makes a filesystem type mountable by its name.</summary>
    public static IAppKernelBuilder AddFileSystem<TFileSystemType>(this IAppKernelBuilder builder)
        where TFileSystemType : class, IFileSystemType
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Services.AddSingleton<IFileSystemType, TFileSystemType>();
        return builder;
    }

    /// <summary>Adds a network stack; each sandbox gets its own instance.</summary>
    public static IAppKernelBuilder AddNetworkStack<TStack>(this IAppKernelBuilder builder)
        where TStack : class, INetworkStack
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Services.AddSingleton(new NetworkStackRegistration(sp => ActivatorUtilities.CreateInstance<TStack>(sp)));
        return builder;
    }

    private sealed class DelegateSyscallHandler(int number, string name, SupportLevel support, SyscallHandler handler) : ISyscallHandler
    {
        public int Number => number;

        public string Name => name;

        public SupportLevel Support => support;

        public SyscallResult Handle(ISyscallContext context) => handler(context);
    }
}
