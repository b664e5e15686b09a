using System.Diagnostics;
using System.Text;

namespace AppKernel.Integration.Tests;

/// <summary>
/// Readiness waits driven from the host: a program blocked in poll, select or epoll_wait on its
/// standard input (a host pipe watched by the kernel's host poller) wakes when the host writes and
/// sees end of file when the host closes; and a program that waits does not keep a CPU busy.
/// The single-process behaviour of poll, epoll, eventfd, timerfd and signalfd is compared with
/// native runs in <see cref="FixtureTests"/>.
/// </summary>
[TestClass]
public sealed class ReadinessTests
{
    public static IEnumerable<object[]> WaitModes()
    {
        foreach (var platform in Sandboxes.Platforms)
        {
            foreach (var mode in new[] { "poll", "select", "epoll", "read" })
            {
                yield return [platform[0], mode];
            }
        }
    }

    [TestMethod]
    [DynamicData(nameof(WaitModes))]
    public async Task AWaitOnStandardInputWakesWhenTheHostWritesAndEndsAtEndOfFile(string platform, string mode)
    {
        await using var sandbox = await CreateSandbox(platform);
        var process = await sandbox.StartAsync(new ProcessSpec(Fixtures.Path("waitstdin.static"), mode));
        var output = new OutputCollector(process.StandardOutput!);
        await output.WaitFor("waiting\n");

        // The program is blocked now; each write must wake it.
        await Task.Delay(200);
        await Write(process.StandardInput!, "one\n");
        await output.WaitFor("got one\n");
        await Task.Delay(200);
        await Write(process.StandardInput!, "two\n");
        await output.WaitFor("got two\n");
        process.StandardInput!.Dispose();

        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var status = await process.WaitForExitAsync(timeout.Token);
        await output.Completion.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.AreEqual("waiting\ngot one\ngot two\neof\n", output.Text);
        Assert.AreEqual(0, status.ShellStatus);
    }

    [TestMethod]
    [DynamicData(nameof(Sandboxes.Platforms), typeof(Sandboxes))]
    public async Task WaitingDoesNotSpin(string platform)
    {
        // Five waits of 400 ms: poll, select, epoll_wait, a blocking timerfd read and ppoll.
        var cpu = Process.GetCurrentProcess().TotalProcessorTime;
        var clock = Stopwatch.StartNew();
        var run = await Sandboxes.Run(platform, Fixtures.Path("idlewait.static"), ["400"]);
        clock.Stop();
        var used = Process.GetCurrentProcess().TotalProcessorTime - cpu;
        Assert.AreEqual("poll 0\nselect 0\nepoll_wait 0\ntimerfd 1\nppoll 0\n", run.Text, run.Error);
        Assert.IsTrue(clock.Elapsed >= TimeSpan.FromMilliseconds(1900), $"the waits took {clock.Elapsed}");

        // Sandbox start-up and exit cost some CPU; two seconds of waiting must not.
        Assert.IsTrue(used < TimeSpan.FromMilliseconds(clock.Elapsed.TotalMilliseconds * 0.5),
            $"the Sentry used {used.TotalMilliseconds:F0} ms of CPU over {clock.Elapsed.TotalMilliseconds:F0} ms of waiting");
    }

    private static async Task<ISandbox> CreateSandbox(string platform)
    {
        // The same services as every other integration test: ptrace and, where it runs, KVM.
        return await Sandboxes.Factory.CreateAsync(o =>
        {
            o.Platform = platform;
            o.Environment.Clear();
            foreach (var (key, value) in Sandboxes.DefaultEnvironment)
            {
                o.Environment[key] = value;
            }

            o.Mounts.Add(new MountSpec { Target = Repository.Artifacts, Type = "bind", Source = Repository.Artifacts, ReadOnly = true });
        });
    }

    private static async Task Write(Stream stream, string text)
    {
        await stream.WriteAsync(Encoding.UTF8.GetBytes(text));
        await stream.FlushAsync();
    }

    /// <summary>Reads a stream as it comes, so a test can wait for some text to appear.</summary>
    private sealed class OutputCollector
    {
        private readonly StringBuilder text = new();
        private readonly SemaphoreSlim changed = new(0);

        public OutputCollector(Stream stream) => Completion = Task.Run(() => Pump(stream));

        public Task Completion { get; }

        public string Text
        {
            get
            {
                lock (text)
                {
                    return text.ToString();
                }
            }
        }

        public async Task WaitFor(string expected)
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            while (!Text.EndsWith(expected, StringComparison.Ordinal))
            {
                try
                {
                    await changed.WaitAsync(timeout.Token);
                }
                catch (OperationCanceledException)
                {
                    Assert.Fail($"'{expected.TrimEnd()}' did not appear; output so far: '{Text}'");
                }

                if (Completion.IsCompleted && !Text.EndsWith(expected, StringComparison.Ordinal))
                {
                    Assert.Fail($"the output ended without '{expected.TrimEnd()}': '{Text}'");
                }
            }
        }

        private async Task Pump(Stream stream)
        {
            var buffer = new byte[4096];
            try
            {
                int n;
                while ((n = await stream.ReadAsync(buffer)) > 0)
                {
                    lock (text)
                    {
                        text.Append(Encoding.UTF8.GetString(buffer, 0, n));
                    }

                    changed.Release();
                }
            }
            finally
            {
                changed.Release();
            }
        }
    }
}
