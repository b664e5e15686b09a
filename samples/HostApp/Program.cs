// A host application using AppKernel from its NuGet packages: it runs a program in a sandbox,
// streams the program's output as it comes, and prints how the program ended and what it used.
//
//   dotnet run --project samples/HostApp -c Release                 (a built-in demo script)
//   dotnet run --project samples/HostApp -c Release -- /bin/ls -la /
using AppKernel;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

string[] command = args.Length > 0
    ? args
    : ["/bin/sh", "-c", "echo hello from the sandbox; uname -sr; id -u; cat /proc/self/status | grep -c Pid; echo oops >&2; exit 3"];

var services = new ServiceCollection()
    .AddLogging(logging => logging.AddConsole().SetMinimumLevel(LogLevel.Warning));
services.AddAppKernel(options =>
    {
        options.RootFs = "/";
        options.RootFsMode = RootFsMode.Overlay;   // the program may write; the host's files never change
        options.Limits.MemoryBytes = 256L << 20;
        options.Limits.CpuSeconds = 10;
        options.Limits.WallSeconds = 30;
        options.AuditEvents = true;
    })
    .UsePtracePlatform();
await using var provider = services.BuildServiceProvider();

using var cancel = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) => { e.Cancel = true; cancel.Cancel(); };

var factory = provider.GetRequiredService<ISandboxFactory>();
await using ISandbox sandbox = await factory.CreateAsync(cancellationToken: cancel.Token);
await using ISandboxProcess process = await sandbox.StartAsync(new ProcessSpec(command[0], command[1..]), cancel.Token);

// Stream stdout and stderr line by line while the program runs.
var stdout = Pump(process.StandardOutput!, "out", cancel.Token);
var stderr = Pump(process.StandardError!, "err", cancel.Token);
process.StandardInput!.Dispose();   // no input: the program reads end-of-file

ExitStatus status = await process.WaitForExitAsync(cancel.Token);
await Task.WhenAll(stdout, stderr);
ResourceUsage usage = process.ResourceUsage;

int execs = 0, opens = 0;
while (sandbox.Events.TryRead(out var e))
{
    if (e.Kind == SandboxEventKind.Exec) execs++;
    if (e.Kind == SandboxEventKind.Open) opens++;
}

Console.WriteLine($"status: {status}");
Console.WriteLine($"exit code: {(status.ExitCode?.ToString() ?? "-")}, signal: {(status.Signal?.ToString() ?? "-")}");
Console.WriteLine($"cpu time: {usage.CpuTime.TotalMilliseconds:F1} ms (user {usage.UserCpuTime.TotalMilliseconds:F1}, system {usage.SystemCpuTime.TotalMilliseconds:F1})");
Console.WriteLine($"peak memory: {usage.PeakMemoryBytes / 1024} KiB");
Console.WriteLine($"limit hit: {usage.LimitHit}");
Console.WriteLine($"audit: {execs} exec, {opens} open, {sandbox.DroppedEvents} dropped");
return status.ShellStatus;

static async Task Pump(Stream stream, string name, CancellationToken cancellationToken)
{
    using var reader = new StreamReader(stream);
    while (await reader.ReadLineAsync(cancellationToken) is { } line)
    {
        Console.WriteLine($"[{name}] {line}");
    }
}
