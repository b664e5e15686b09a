using System.Diagnostics;
using System.Text.Json;
using AppKernel.Samples.CodeRunner;

namespace AppKernel.Integration.Tests;

/// <summary>
/// samples/CodeRunner: submissions judged in fresh sandboxes under the judge's limits (wall 5 s,
/// CPU 2 s, memory 256 MiB, output 64 KiB, 64 tasks, no network, read-only root, private /tmp).
/// </summary>
[TestClass]
public sealed class CodeRunnerTests
{
    private static Judge Judge => new(Sandboxes.Factory);

    [TestMethod]
    public async Task ACorrectCProgramIsCompiledInTheSandboxAndRuns()
    {
        var v = await Judge.RunAsync(new Submission
        {
            Language = "c",
            Source = "#include <stdio.h>\nint main(void) { int x; if (scanf(\"%d\", &x) != 1) return 2; printf(\"%d\\n\", x * x); return 0; }\n",
            Stdin = "12\n",
        });
        Assert.AreEqual("run", v.Stage, v.Stderr);
        Assert.AreEqual("144\n", v.Stdout, v.Stderr);
        Assert.AreEqual("", v.Stderr);
        Assert.AreEqual(0, v.ExitCode);
        Assert.IsNull(v.Signal);
        Assert.IsFalse(v.TimedOut);
        Assert.IsNull(v.Limit);
        Assert.IsGreaterThanOrEqualTo(0, v.CpuMs);
        Assert.IsGreaterThan(0, v.MaxRssBytes);
        Assert.IsLessThan(64L << 20, v.MaxRssBytes);
    }

    [TestMethod]
    public async Task ACompileErrorComesBackWithTheCompilersMessages()
    {
        var v = await Judge.RunAsync(new Submission { Language = "c", Source = "int main(void) { return undefined_thing; }\n" });
        Assert.AreEqual("compile", v.Stage);
        Assert.AreEqual(1, v.ExitCode);
        Assert.IsNull(v.Signal);
        StringAssert.Contains(v.Stderr, "error: 'undefined_thing' undeclared");
        Assert.AreEqual("", v.Stdout);
        Assert.IsFalse(v.TimedOut);
        Assert.IsNull(v.Limit);
    }

    [TestMethod]
    public async Task APythonExceptionExitsWithOneAndATraceback()
    {
        var v = await Judge.RunAsync(new Submission { Language = "python", Source = "print('before')\ndef f():\n    raise ValueError('bad value')\nf()\n" });
        Assert.AreEqual("before\n", v.Stdout, v.Stderr);
        StringAssert.Contains(v.Stderr, "Traceback (most recent call last):");
        StringAssert.Contains(v.Stderr, "ValueError: bad value");
        Assert.AreEqual(1, v.ExitCode);
        Assert.IsNull(v.Signal);
        Assert.IsFalse(v.TimedOut);
        Assert.IsNull(v.Limit);
        Assert.IsGreaterThan(0, v.CpuMs);
    }

    [TestMethod]
    public async Task AnInfiniteLoopTimesOut()
    {
        var started = Stopwatch.StartNew();
        var v = await Judge.RunAsync(new Submission { Language = "sh", Source = "while :; do :; done\n" });
        Assert.IsTrue(v.TimedOut, Json(v));
        // CPU 2 s comes first on an idle machine; on a loaded one the 5 s wall clock may.
        Assert.IsTrue(v.Limit is "cpu" or "wall", Json(v));
        Assert.IsNull(v.ExitCode);
        Assert.IsTrue(v.Signal is 24 or 9, Json(v));
        Assert.IsTrue(v.Limit == "wall" || v.CpuMs >= 2000, Json(v));
        Assert.IsLessThan(TimeSpan.FromSeconds(30), started.Elapsed);
    }

    [TestMethod]
    public async Task AMemoryHogHitsTheMemoryLimit()
    {
        var v = await Judge.RunAsync(new Submission { Language = "python", Source = "chunks = []\nwhile True:\n    chunks.append(b'\\x01' * (1 << 20))\n" });
        Assert.AreEqual("memory", v.Limit, Json(v));
        Assert.IsFalse(v.TimedOut);
        // Python gets MemoryError (exit 1), or the OOM killer ends it first (SIGKILL).
        Assert.IsTrue(v.ExitCode == 1 || v.Signal == 9, Json(v));
        Assert.IsGreaterThan(128L << 20, v.MaxRssBytes, Json(v));
        Assert.IsLessThanOrEqualTo(300L << 20, v.MaxRssBytes, Json(v));
    }

    [TestMethod]
    public async Task AnOutputFloodIsTruncatedAtTheOutputLimit()
    {
        long before = GC.GetTotalAllocatedBytes(precise: false);
        var v = await Judge.RunAsync(new Submission { Language = "sh", Source = "exec yes flood\n" });
        long allocated = GC.GetTotalAllocatedBytes(precise: false) - before;
        Assert.AreEqual(64 * 1024, v.Stdout.Length, "exactly the limit is kept");
        StringAssert.StartsWith(v.Stdout, "flood\nflood\n");
        Assert.AreEqual("output", v.Limit);
        Assert.AreEqual(25, v.Signal, Json(v)); // SIGXFSZ
        Assert.IsNull(v.ExitCode);
        Assert.IsFalse(v.TimedOut);
        // The runner keeps what the limit allows, not what the program tries to write.
        Assert.IsLessThan(64L << 20, allocated, $"allocated {allocated} bytes");
    }

    [TestMethod]
    public async Task AForkBombIsContainedAtTheTaskLimit()
    {
        var started = Stopwatch.StartNew();
        var before = HostProcesses.Descendants();
        var v = await Judge.RunAsync(new Submission { Language = "c", Source = "#include <unistd.h>\nint main(void) { for (;;) fork(); }\n" });
        Assert.AreEqual("run", v.Stage, v.Stderr);
        Assert.AreEqual("tasks", v.Limit, Json(v));
        Assert.IsNull(v.ExitCode);
        Assert.IsNotNull(v.Signal, Json(v));
        Assert.IsLessThan(TimeSpan.FromSeconds(60), started.Elapsed);
        HostProcesses.AssertGone(HostProcesses.Descendants().Except(before));
    }

    [TestMethod]
    public async Task EightSubmissionsAtOnceEachGetTheirOwnSandbox()
    {
        var submissions = Enumerable.Range(1, 8).Select(n => new Submission
        {
            Language = n % 2 == 0 ? "python" : "sh",
            Source = n % 2 == 0
                ? "import os\nx = int(input())\nprint(x * x)\nopen('/tmp/mark', 'w').write(str(x))\nprint(' '.join(sorted(os.listdir('/tmp'))))\n"
                : "read x\necho $((x * x))\necho $x > /tmp/mark\necho $(ls /tmp)\n",
            Stdin = $"{n}\n",
        }).ToArray();
        var verdicts = await Judge.RunManyAsync(submissions, parallelism: 8);
        for (int i = 0; i < 8; i++)
        {
            int n = i + 1;
            var v = verdicts[i];
            Assert.AreEqual($"{n * n}\nbox mark\n", v.Stdout, Json(v));
            Assert.AreEqual(0, v.ExitCode, Json(v));
            Assert.IsNull(v.Limit, Json(v));
            Assert.IsFalse(v.TimedOut);
        }
    }

    [TestMethod]
    public void TheVerdictJsonHasTheDocumentedFields()
    {
        var json = JsonSerializer.Serialize(new Verdict { Stdout = "a", Stderr = "", ExitCode = 0, CpuMs = 3, MaxRssBytes = 4096 });
        using var document = JsonDocument.Parse(json);
        var names = document.RootElement.EnumerateObject().Select(p => p.Name).ToArray();
        CollectionAssert.AreEqual(new[] { "stdout", "stderr", "exitCode", "signal", "timedOut", "limit", "cpuMs", "maxRssBytes", "stage" }, names);
    }

    private static string Json(Verdict v) => JsonSerializer.Serialize(v);
}
