using AppKernel.Platform;
using AppKernel.Platform.Kvm;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace AppKernel.Integration.Tests;

/// <summary>Runs programs in fresh sandboxes on each platform this machine supports.</summary>
internal static class Sandboxes
{
    public static readonly IReadOnlyDictionary<string, string> DefaultEnvironment = new Dictionary<string, string>
    {
        ["PATH"] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        ["LC_ALL"] = "C",
        ["TZ"] = "UTC",
        ["HOME"] = "/root",
    };

    private static readonly Lazy<ServiceProvider> Provider = new(() =>
    {
        var services = new ServiceCollection();
        services.AddLogging(b => b.SetMinimumLevel(LogLevel.Warning));
        services.AddAppKernel().UsePtracePlatform().AddPlatform<KvmPlatform>("kvm");
        return services.BuildServiceProvider();
    });

    /// <summary>The sandbox factory of the suite's services (ptrace and KVM registered), for tests that drive a sandbox themselves.</summary>
    public static ISandboxFactory Factory => Provider.Value.GetRequiredService<ISandboxFactory>();

    /// <summary>The platforms the integration tests run on: every one this machine supports.</summary>
    public static IEnumerable<object[]> Platforms
    {
        get
        {
            yield return ["ptrace"];
            if (KvmUsable.Value)
            {
                yield return ["kvm"];
            }
        }
    }

    /// <summary>Whether /dev/kvm exists and the KVM platform runs on it.</summary>
    private static readonly Lazy<bool> KvmUsable = new(() =>
    {
        if (!File.Exists(KvmPlatform.DefaultDevicePath))
        {
            return false;
        }

        try
        {
            Provider.Value.GetRequiredService<KvmPlatform>().EnsureAvailable();
            return true;
        }
        catch (PlatformUnavailableException e)
        {
            Console.Error.WriteLine($"KVM platform not tested: {e.Message}");
            return false;
        }
    });

    /// <summary>Runs <paramref name="path"/> in a new sandbox and collects its output and status.</summary>
    public static async Task<ProgramRun> Run(
        string platform,
        string path,
        IReadOnlyList<string> arguments,
        Action<SandboxOptions>? configure = null,
        IReadOnlyDictionary<string, string>? environment = null,
        Func<ISandbox, Task>? afterExit = null,
        bool bindArtifacts = true)
    {
        var factory = Provider.Value.GetRequiredService<ISandboxFactory>();
        await using var sandbox = await factory.CreateAsync(o =>
        {
            o.Platform = platform;
            o.Environment.Clear();
            foreach (var (key, value) in environment ?? DefaultEnvironment)
            {
                o.Environment[key] = value;
            }

            // The fixtures and test data live under the repository's artifacts folder, which may
            // itself be under /tmp (a CI clone): the sandbox's /tmp is private, so bind it in.
            if (bindArtifacts)
            {
                o.Mounts.Add(new MountSpec { Target = Repository.Artifacts, Type = "bind", Source = Repository.Artifacts, ReadOnly = true });
            }

            configure?.Invoke(o);
        });
        var process = await sandbox.StartAsync(new ProcessSpec(path, [.. arguments]));
        process.StandardInput!.Dispose();
        var output = new MemoryStream();
        var error = new MemoryStream();
        var copyOut = process.StandardOutput!.CopyToAsync(output);
        var copyError = process.StandardError!.CopyToAsync(error);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(120));
        var status = await process.WaitForExitAsync(timeout.Token);
        await Task.WhenAll(copyOut, copyError).WaitAsync(TimeSpan.FromSeconds(30));
        if (afterExit is not null)
        {
            await afterExit(sandbox);
        }

        return new ProgramRun(output.ToArray(), System.Text.Encoding.UTF8.GetString(error.ToArray()), status.ShellStatus);
    }
}
