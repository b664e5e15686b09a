namespace AppKernel.Integration.Tests;

/// <summary>Pseudo-terminals as programs use them: Python's pty module, a shell reading a terminal.</summary>
[TestClass]
public sealed class TerminalTests
{
    private const string PythonPty = """
        import os, pty, sys
        m, s = os.openpty()
        print("isatty", os.isatty(s), os.ttyname(s).startswith("/dev/pts/"))
        os.write(m, b"hi\n")
        print(os.read(s, 100), os.read(m, 100))
        sys.stdout.flush()
        pid, fd = pty.fork()
        if pid == 0:
            print("child tty", os.isatty(0), os.getsid(0) == os.getpid(), os.tcgetpgrp(0) == os.getpid())
            print("got", input().upper())
            sys.exit(3)
        # The child's first line before the input: the echo of "hello" would otherwise race with it.
        out = b""
        while b"\n" not in out:
            out += os.read(fd, 1024)
        os.write(fd, b"hello\n")
        while True:
            try:
                chunk = os.read(fd, 1024)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        print(out, os.waitpid(pid, 0)[1] >> 8)
        """;

    [TestMethod]
    [DynamicData(nameof(Sandboxes.Platforms), typeof(Sandboxes))]
    public async Task PythonOpenptyAndPtyForkBehaveAsNatively(string platform)
    {
        string? python = new[] { "/usr/bin/python3", "/usr/local/bin/python3" }.FirstOrDefault(File.Exists);
        if (python is null)
        {
            Assert.Inconclusive("python3 is not installed on this machine");
        }

        var native = ProgramRun.Native(python, ["-c", PythonPty]);
        var run = await Sandboxes.Run(platform, python, ["-c", PythonPty]);
        Assert.AreEqual(native.Text, run.Text, run.Error);
        StringAssert.Contains(run.Text, "got HELLO", run.Error);
        Assert.AreEqual(0, run.Status, run.Error);
    }

    [TestMethod]
    [DynamicData(nameof(Sandboxes.Platforms), typeof(Sandboxes))]
    public async Task AShellReadsLinesFromATerminalAndTheSlaveAppearsInDevPts(string platform)
    {
        // script(1)-like: a session on a new terminal runs sh, which reads its input from the terminal.
        const string program = """
            import os, pty
            pid, fd = pty.fork()
            if pid == 0:
                os.execv("/bin/sh", ["sh", "-c", "read a; echo \"[$a]\"; ls /dev/pts | tr '\\n' ' '; echo; tty"])
            os.write(fd, b"typed\n")
            out = b""
            while True:
                try:
                    chunk = os.read(fd, 1024)
                except OSError:
                    break
                if not chunk:
                    break
                out += chunk
            print(out.decode().replace("\r", ""), end="")
            print("status", os.waitpid(pid, 0)[1])
            """;
        string? python = new[] { "/usr/bin/python3", "/usr/local/bin/python3" }.FirstOrDefault(File.Exists);
        if (python is null)
        {
            Assert.Inconclusive("python3 is not installed on this machine");
        }

        var run = await Sandboxes.Run(platform, python, ["-c", program]);
        Assert.AreEqual("typed\n[typed]\n0 ptmx \n/dev/pts/0\nstatus 0\n", run.Text, run.Error);
        Assert.AreEqual(0, run.Status, run.Error);
    }
}
