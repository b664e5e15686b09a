using System.Security.Cryptography;

namespace AppKernel.Integration.Tests;

/// <summary>Real, dynamically linked host programs: the same stdout and exit status as native.</summary>
[TestClass]
public sealed class HostProgramTests
{
    public static IEnumerable<object[]> Programs()
    {
        (string Path, string[] Args)[] programs =
        [
            ("/bin/true", []),
            ("/bin/false", []),
            ("/bin/echo", ["hello", "sandbox"]),
            ("/bin/cat", ["/etc/os-release"]),
            ("/bin/ls", ["-la", "/usr/bin"]),
            ("/bin/sh", ["-c", "echo $((6*7)); cd /tmp && pwd"]),
            ("/bin/sh", ["-c", "exit 7"]),
        ];
        foreach (var platform in Sandboxes.Platforms)
        {
            foreach (var (path, args) in programs)
            {
                yield return [platform[0], path, args];
            }
        }
    }

    [TestMethod]
    [DynamicData(nameof(Programs))]
    public async Task SameOutputAndStatusAsNative(string platform, string path, string[] arguments)
    {
        var native = ProgramRun.Native(path, arguments);
        var sandboxed = await Sandboxes.Run(platform, path, arguments);
        Assert.AreEqual(native.Text, sandboxed.Text, $"stdout differs; sandbox stderr: {sandboxed.Error}");
        Assert.AreEqual(native.Status, sandboxed.Status, $"exit status differs; sandbox stderr: {sandboxed.Error}");
    }

    [TestMethod]
    [DynamicData(nameof(Sandboxes.Platforms), typeof(Sandboxes))]
    public async Task Sha256OfATenMebibyteFile(string platform)
    {
        string file = Path.Combine(Repository.Artifacts, "ten-mebibytes.bin");
        if (!File.Exists(file) || new FileInfo(file).Length != 10 << 20)
        {
            var data = new byte[10 << 20];
            new Random(1234).NextBytes(data);
            File.WriteAllBytes(file, data);
        }

        string expected = Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(file)));
        var run = await Sandboxes.Run(platform, "/usr/bin/sha256sum", [file]);
        Assert.AreEqual(0, run.Status, run.Error);
        Assert.AreEqual($"{expected}  {file}\n", run.Text);
    }

    [TestMethod]
    [DynamicData(nameof(Sandboxes.Platforms), typeof(Sandboxes))]
    public async Task Python(string platform)
    {
        string? python = new[] { "/usr/bin/python3", "/usr/local/bin/python3" }.FirstOrDefault(File.Exists);
        if (python is null)
        {
            Assert.Inconclusive("python3 is not installed on this machine");
        }

        var run = await Sandboxes.Run(platform, python, ["-c", "print(sum(range(10**6)))"]);
        Assert.AreEqual("499999500000\n", run.Text, run.Error);
        Assert.AreEqual(0, run.Status);
    }

    private const string PythonProcesses = """
        import threading, subprocess, os, signal, multiprocessing
        r = []
        def w(i): r.append(sum(range(100000)) * i)
        ts = [threading.Thread(target=w, args=(i,)) for i in range(4)]
        [t.start() for t in ts]; [t.join() for t in ts]
        print(sorted(r))
        print(subprocess.run(["echo", "from a child"], capture_output=True, text=True).stdout.strip())
        pid = os.fork()
        if pid == 0:
            os._exit(7)
        print("fork status", os.waitpid(pid, 0)[1] >> 8)
        got = []
        signal.signal(signal.SIGALRM, lambda s, f: got.append(s))
        signal.alarm(1)
        signal.pause()
        print("alarm", got)
        def square(x): return x * x
        if __name__ == "__main__":
            with multiprocessing.Pool(2) as pool:
                print(pool.map(square, range(10)))
        """;

    [TestMethod]
    [DynamicData(nameof(Sandboxes.Platforms), typeof(Sandboxes))]
    public async Task PythonThreadsSubprocessesForkAlarmAndAPool(string platform)
    {
        string? python = new[] { "/usr/bin/python3", "/usr/local/bin/python3" }.FirstOrDefault(File.Exists);
        if (python is null)
        {
            Assert.Inconclusive("python3 is not installed on this machine");
        }

        var native = ProgramRun.Native(python, ["-c", PythonProcesses]);
        var run = await Sandboxes.Run(platform, python, ["-c", PythonProcesses]);
        Assert.AreEqual(native.Text, run.Text, run.Error);
        Assert.AreEqual(0, run.Status, run.Error);
    }

    [TestMethod]
    [DynamicData(nameof(Sandboxes.Platforms), typeof(Sandboxes))]
    public async Task AWriteToEtcStaysInTheOverlay(string platform)
    {
        string name = "appkernel-overlay-" + Guid.NewGuid().ToString("N");
        var run = await Sandboxes.Run(platform, "/bin/sh", ["-c", $"echo written-inside > /etc/{name} && read line < /etc/{name} && echo \"$line\""]);
        Assert.AreEqual("written-inside\n", run.Text, run.Error);
        Assert.AreEqual(0, run.Status);
        Assert.IsFalse(File.Exists($"/etc/{name}"), "the write reached the host");
    }

    [TestMethod]
    [DynamicData(nameof(Sandboxes.Platforms), typeof(Sandboxes))]
    public async Task AMissingProgramIsReportedAsENOENT(string platform)
    {
        var error = await Assert.ThrowsExactlyAsync<SandboxStartException>(() => Sandboxes.Run(platform, "/no/such/program", []));
        Assert.AreEqual(Errno.ENOENT, error.Errno);
    }

    [TestMethod]
    [DynamicData(nameof(Sandboxes.Platforms), typeof(Sandboxes))]
    public async Task AFileWithoutExecuteBitIsReportedAsEACCES(string platform)
    {
        var error = await Assert.ThrowsExactlyAsync<SandboxStartException>(() => Sandboxes.Run(platform, "/etc/os-release", []));
        Assert.AreEqual(Errno.EACCES, error.Errno);
    }
}
