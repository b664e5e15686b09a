using AppKernel.Platform.Ptrace;
using AppKernel.Sentry.Hosting;
using AppKernel.Syscalls;
using Microsoft.Extensions.DependencyInjection;

namespace AppKernel.Sdk.Tests;

[TestClass]
public sealed class CompositionTests
{
    private static SentryServices Compose(Action<IAppKernelBuilder> configure)
    {
        var services = new ServiceCollection();
        configure(services.AddAppKernel().UsePlatform<FakePlatform>("fake"));
        return services.BuildServiceProvider().GetRequiredService<SentryServices>();
    }

    [TestMethod]
    public void AddAppKernelRegistersTheFactoryAndTheSelectedPlatform()
    {
        var services = new ServiceCollection();
        services.AddAppKernel().UsePtracePlatform();
        using var provider = services.BuildServiceProvider();
        Assert.IsInstanceOfType<ISandboxFactory>(provider.GetRequiredService<ISandboxFactory>());
        Assert.AreEqual("ptrace", provider.GetRequiredService<DefaultPlatformSelection>().Name);
        Assert.IsInstanceOfType<PtracePlatform>(provider.GetRequiredService<SentryServices>().GetPlatform("ptrace"));
    }

    [TestMethod]
    public void UnimplementedSyscallsAnswerEnosysAndUnknownNumbersToo()
    {
        var sentry = Compose(_ => { });
        Assert.AreEqual(Errno.ENOSYS, sentry.Dispatcher.Dispatch(new FakeSyscallContext(246)).Errno, "kexec_load");
        Assert.AreEqual(Errno.ENOSYS, sentry.Dispatcher.Dispatch(new FakeSyscallContext(1000)).Errno, "syscall 1000");
        Assert.AreEqual(Errno.ENOSYS, sentry.Dispatcher.Dispatch(new FakeSyscallContext(-1)).Errno, "negative number");
        Assert.IsTrue(sentry.Table.TryGetEntry(246, out var entry));
        Assert.AreEqual(SupportLevel.Unimplemented, entry.Support);
        Assert.AreEqual("kexec_load", entry.Name);
    }

    [TestMethod]
    public void AReplacementHandlerAnswersInsteadOfTheSentrys()
    {
        var sentry = Compose(b => b.AddSyscallHandler(39, "getpid", _ => SyscallResult.Ok(777)));
        Assert.AreEqual(777, sentry.Dispatcher.Dispatch(new FakeSyscallContext(39)).Raw);
        Assert.IsTrue(sentry.Table.TryGetEntry(39, out var entry));
        Assert.AreNotEqual("Sentry", entry.Source);
    }

    [TestMethod]
    public void AnInterceptorCanRewriteTheNumberAndTheHandlerOfTheNewNumberRuns()
    {
        var sentry = Compose(b => b
            .AddSyscallHandler(39, "getpid", _ => SyscallResult.Ok(39_000))
            .AddSyscallHandler(110, "getppid", _ => SyscallResult.Ok(110_000))
            .AddSyscallInterceptor<RewriteToGetpid>());
        Assert.AreEqual(39_000, sentry.Dispatcher.Dispatch(new FakeSyscallContext(110)).Raw);
    }

    [TestMethod]
    public void InterceptorsRunInRegistrationOrderAndOnlyForTheirSyscalls()
    {
        var recorder = new RecordingInterceptor();
        var sentry = Compose(b => b
            .AddSyscallHandler(39, "getpid", _ => SyscallResult.Ok(5))
            .AddSyscallInterceptor(recorder)
            .AddSyscallInterceptor<RewriteToGetpid>());
        sentry.Dispatcher.Dispatch(new FakeSyscallContext(110));
        sentry.Dispatcher.Dispatch(new FakeSyscallContext(39));
        // The recorder runs first, so it sees getppid before the rewrite, then the getpid call.
        CollectionAssert.AreEqual(new[] { 110, 39 }, recorder.Seen);
    }

    [TestMethod]
    public void AHandlerThrowingErrnoExceptionBecomesThatErrno()
    {
        var sentry = Compose(b => b.AddSyscallHandler(39, "getpid", _ => throw new ErrnoException(Errno.EMFILE)));
        Assert.AreEqual(Errno.EMFILE, sentry.Dispatcher.Dispatch(new FakeSyscallContext(39)).Errno);
    }

    [TestMethod]
    public void TwoReplacementsOfOneSyscallFailWithAMessageNamingBoth()
    {
        var services = new ServiceCollection();
        services.AddAppKernel().UsePlatform<FakePlatform>("fake")
            .AddSyscallHandler(39, "getpid", Handlers.First)
            .AddSyscallHandler(39, "getpid", Handlers.Second);
        using var provider = services.BuildServiceProvider();
        var error = Assert.ThrowsExactly<SandboxConfigurationException>(() => provider.GetRequiredService<SentryServices>());
        Assert.AreEqual(
            "Syscall getpid (39) is replaced by both 'AppKernel.Sdk.Tests' and 'AppKernel.Sdk.Tests'; at most one plugin may replace a syscall.",
            error.Message);
    }

    private static class Handlers
    {
        public static SyscallResult First(ISyscallContext context) => SyscallResult.Ok(1);

        public static SyscallResult Second(ISyscallContext context) => SyscallResult.Ok(2);
    }
}
