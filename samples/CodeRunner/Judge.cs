using System.Text;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace AppKernel.Samples.CodeRunner;

/// <summary>The limits a submission runs under.</summary>
public sealed record JudgeLimits
{
    /// <summary>Wall-clock time, seconds.</summary>
    public double WallSeconds { get; init; } = 5;

    /// <summary>CPU time of all the submission's processes, seconds.</summary>
    public double CpuSeconds { get; init; } = 2;

    /// <summary>Memory, bytes.</summary>
    public long MemoryBytes { get; init; } = 256L << 20;

    /// <summary>stdout and stderr together, bytes.</summary>
    public long OutputBytes { get; init; } = 64 << 10;

    /// <summary>Processes and threads alive at once.</summary>
    public int Tasks { get; init; } = 64;
}

/// <summary>
/// Runs submissions, each in a fresh sandbox: read-only root, a private /tmp, no network, and
/// the <see cref="JudgeLimits"/>. C is compiled with gcc first, in a sandbox of its own (with
/// roomier limits) that writes the binary into a per-submission host folder; the run sandbox
/// sees that folder read-only at <c>/tmp/box</c> (inside its private /tmp: a read-only root cannot take a new mount point). Nothing a submission does is visible to another.
/// </summary>
public sealed class Judge
{
    private static readonly JudgeLimits CompileLimits = new() { WallSeconds = 60, CpuSeconds = 30, MemoryBytes = 1L << 30, OutputBytes = 64 << 10, Tasks = 64 };

    private readonly ISandboxFactory factory;
    private readonly JudgeLimits limits;
    private readonly ILogger logger;

    /// <summary>Creates a judge that makes its sandboxes with <paramref name="factory"/>.</summary>
    public Judge(ISandboxFactory factory, JudgeLimits? limits = null, ILogger<Judge>? logger = null)
    {
        this.factory = factory;
        this.limits = limits ?? new JudgeLimits();
        this.logger = logger ?? NullLogger<Judge>.Instance;
    }

    /// <summary>Runs many submissions at once (at most <paramref name="parallelism"/> at a time); verdicts in order.</summary>
    public async Task<Verdict[]> RunManyAsync(IReadOnlyList<Submission> submissions, int parallelism = 8, CancellationToken cancellationToken = default)
    {
        var verdicts = new Verdict[submissions.Count];
        await Parallel.ForEachAsync(
            Enumerable.Range(0, submissions.Count),
            new ParallelOptions { MaxDegreeOfParallelism = parallelism, CancellationToken = cancellationToken },
            async (i, token) => verdicts[i] = await RunAsync(submissions[i], token).ConfigureAwait(false)).ConfigureAwait(false);
        return verdicts;
    }

    /// <summary>Runs one submission in fresh sandboxes and returns its verdict.</summary>
    public async Task<Verdict> RunAsync(Submission submission, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(submission);
        var box = Directory.CreateTempSubdirectory("coderunner-");
        try
        {
            string[] command;
            switch (submission.Language)
            {
                case "c":
                    await File.WriteAllTextAsync(Path.Combine(box.FullName, "main.c"), submission.Source, cancellationToken).ConfigureAwait(false);
                    var compiled = await RunInSandboxAsync(
                        ["/usr/bin/gcc", "-O2", "-o", "/tmp/box/main", "/tmp/box/main.c", "-lm"], "", box.FullName, writableBox: true, CompileLimits, cancellationToken).ConfigureAwait(false);
                    if (compiled.ExitCode != 0)
                    {
                        return compiled with { Stage = "compile" };
                    }

                    command = ["/tmp/box/main"];
                    break;
                case "python":
                    await File.WriteAllTextAsync(Path.Combine(box.FullName, "main.py"), submission.Source, cancellationToken).ConfigureAwait(false);
                    command = ["/usr/bin/python3", "/tmp/box/main.py"];
                    break;
                case "sh":
                    await File.WriteAllTextAsync(Path.Combine(box.FullName, "main.sh"), submission.Source, cancellationToken).ConfigureAwait(false);
                    command = ["/bin/sh", "/tmp/box/main.sh"];
                    break;
                default:
                    throw new ArgumentException($"unknown language '{submission.Language}' (c, python, sh)", nameof(submission));
            }

            return await RunInSandboxAsync(command, submission.Stdin, box.FullName, writableBox: false, limits, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            try
            {
                box.Delete(recursive: true);
            }
            catch (IOException e)
            {
                logger.LogWarning("cannot remove {Box}: {Message}", box.FullName, e.Message);
            }
        }
    }

    private async Task<Verdict> RunInSandboxAsync(string[] command, string stdin, string box, bool writableBox, JudgeLimits limits, CancellationToken cancellationToken)
    {
        await using var sandbox = await factory.CreateAsync(o =>
        {
            o.RootFs = "/";
            o.RootFsMode = RootFsMode.ReadOnly;   // the default mounts add a private tmpfs /tmp
            o.Network = NetworkMode.None;
            o.WorkingDirectory = "/tmp";
            o.Environment.Clear();
            o.Environment["PATH"] = "/usr/local/bin:/usr/bin:/bin";
            o.Environment["HOME"] = "/tmp";
            o.Environment["LC_ALL"] = "C";
            o.Environment["TMPDIR"] = "/tmp";
            o.Mounts.Add(new MountSpec { Target = "/tmp/box", Type = "bind", Source = box, ReadOnly = !writableBox });
            o.Limits.WallSeconds = limits.WallSeconds;
            o.Limits.CpuSeconds = limits.CpuSeconds;
            o.Limits.MemoryBytes = limits.MemoryBytes;
            o.Limits.OutputBytes = limits.OutputBytes;
            o.Limits.Tasks = limits.Tasks;
        }, cancellationToken).ConfigureAwait(false);

        await using var process = await sandbox.StartAsync(new ProcessSpec(command[0], command[1..]), cancellationToken).ConfigureAwait(false);
        // Never more than the output limit is kept, whatever the program writes.
        int cap = (int)Math.Min(limits.OutputBytes, int.MaxValue);
        var stdout = ReadBoundedAsync(process.StandardOutput!, cap, cancellationToken);
        var stderr = ReadBoundedAsync(process.StandardError!, cap, cancellationToken);
        var input = WriteInputAsync(process.StandardInput!, stdin, cancellationToken);
        var status = await process.WaitForExitAsync(cancellationToken).ConfigureAwait(false);
        // The program's descendants may hold the pipes open; they end with the sandbox.
        sandbox.KillAll();
        string output = await stdout.ConfigureAwait(false);
        string error = await stderr.ConfigureAwait(false);
        await input.ConfigureAwait(false);
        var usage = process.ResourceUsage;
        var limit = sandbox.LimitHit;
        return new Verdict
        {
            Stdout = output,
            Stderr = error,
            ExitCode = status.ExitCode,
            Signal = status.Signal,
            TimedOut = limit is SandboxLimit.Wall or SandboxLimit.Cpu,
            Limit = limit == SandboxLimit.None ? null : limit.ToString().ToLowerInvariant(),
            CpuMs = (long)usage.CpuTime.TotalMilliseconds,
            MaxRssBytes = usage.PeakMemoryBytes,
        };
    }

    private static async Task WriteInputAsync(Stream stdin, string text, CancellationToken cancellationToken)
    {
        try
        {
            await stdin.WriteAsync(Encoding.UTF8.GetBytes(text), cancellationToken).ConfigureAwait(false);
        }
        catch (IOException)
        {
            // The program ended without reading it all (EPIPE).
        }
        finally
        {
            await stdin.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>Reads a stream to its end, keeping at most <paramref name="cap"/> bytes.</summary>
    private static async Task<string> ReadBoundedAsync(Stream stream, int cap, CancellationToken cancellationToken)
    {
        var kept = new MemoryStream();
        var buffer = new byte[16384];
        int read;
        while ((read = await stream.ReadAsync(buffer, cancellationToken).ConfigureAwait(false)) > 0)
        {
            int keep = (int)Math.Min(read, cap - kept.Length);
            if (keep > 0)
            {
                kept.Write(buffer, 0, keep);
            }
        }

        return Encoding.UTF8.GetString(kept.GetBuffer(), 0, (int)kept.Length);
    }
}
