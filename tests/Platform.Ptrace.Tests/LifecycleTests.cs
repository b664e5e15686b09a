using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace AppKernel.Platform.Ptrace.Tests;

[TestClass]
public sealed class LifecycleTests
{
    private const int SIGKILL = 9;

    [System.Runtime.InteropServices.DllImport("libc", SetLastError = true)]
    private static extern int kill(int pid, int signal);

    [TestMethod]
    public void StubKilledWhileRunningGivesAClearException()
    {
        Harness.OnThread(() =>
        {
            using var h = new Harness();
            h.Load(a =>
            {
                var loop = a.CreateLabel();
                a.Label(ref loop);
                a.jmp(loop);
            });
            using var context = h.Platform.CreateExecutionContext(h.Space);
            int pid = h.Space.StubProcessId;
            var killer = new Thread(() =>
            {
                Thread.Sleep(200);
                kill(pid, SIGKILL);
            });
            killer.Start();

            var error = Assert.ThrowsExactly<StubProcessExitedException>(() => context.Switch(Harness.NewState()));
            killer.Join();
            StringAssert.Contains(error.Message, "killed by signal 9");
            Assert.AreEqual(pid, error.ProcessId);
        });
    }

    [TestMethod]
    public void StubKilledWhileStoppedGivesAClearExceptionAndNoZombie()
    {
        int pid = 0;
        Harness.OnThread(() =>
        {
            using var h = new Harness();
            h.Load(a => a.syscall());
            using var context = h.Platform.CreateExecutionContext(h.Space);
            var state = Harness.NewState();
            Assert.AreEqual(SwitchReason.Syscall, context.Switch(state).Reason);
            pid = h.Space.StubProcessId;
            kill(pid, SIGKILL);

            Assert.ThrowsExactly<StubProcessExitedException>(() => context.Switch(state));
            Assert.ThrowsExactly<StubProcessExitedException>(() => h.MapNew(0x70_0000, 1, MemoryAccess.Read));
        });

        Assert.IsFalse(Directory.Exists($"/proc/{pid}"), "the dead stub was reaped");
    }

    [TestMethod]
    public void DisposingReapsTheStubAndItsThreads()
    {
        int pid = 0, tid = 0;
        Harness.OnThread(() =>
        {
            var h = new Harness();
            h.Load(a => a.syscall());
            var context = (PtraceExecutionContext)h.Platform.CreateExecutionContext(h.Space);
            Assert.AreEqual(SwitchReason.Syscall, context.Switch(Harness.NewState()).Reason);
            pid = h.Space.StubProcessId;
            tid = context.StubThreadId;
            Assert.AreNotEqual(pid, tid, "program threads run on cloned stub threads");
            Assert.IsTrue(Directory.Exists($"/proc/{pid}/task/{tid}"));

            context.Dispose();
            Assert.IsFalse(Directory.Exists($"/proc/{pid}/task/{tid}"), "the context's stub thread ended");
            h.Dispose();
        });

        Assert.IsFalse(Directory.Exists($"/proc/{pid}"), "no zombie left");
    }

    [TestMethod]
    public void DisposingTheAddressSpaceUnderARunningContextEndsItsSwitch()
    {
        Harness.OnThread(() =>
        {
            using var h = new Harness();
            h.Load(a =>
            {
                var loop = a.CreateLabel();
                a.Label(ref loop);
                a.jmp(loop);
            });
            using var context = h.Platform.CreateExecutionContext(h.Space);
            int pid = h.Space.StubProcessId;
            var disposer = new Thread(() =>
            {
                Thread.Sleep(200);
                h.Space.Dispose();
            });
            disposer.Start();

            Assert.ThrowsExactly<StubProcessExitedException>(() => context.Switch(Harness.NewState()));
            disposer.Join();
            Assert.IsFalse(Directory.Exists($"/proc/{pid}"));
        });
    }

    [TestMethod]
    public void TracerThreadEndingWithoutDisposeKillsTheStub()
    {
        using var h = new Harness();
        h.Load(a => a.syscall());
        var context = h.Platform.CreateExecutionContext(h.Space);
        int pid = h.Space.StubProcessId;

        // The tracer thread ends while it still traces the stub thread: PTRACE_O_EXITKILL fires.
        Harness.OnThread(() => Assert.AreEqual(SwitchReason.Syscall, context.Switch(Harness.NewState()).Reason));

        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (!File.ReadAllText($"/proc/{pid}/stat").Contains(") Z", StringComparison.Ordinal) && DateTime.UtcNow < deadline)
        {
            Thread.Sleep(10);
        }

        Assert.Contains(") Z", File.ReadAllText($"/proc/{pid}/stat"), "the stub died (a zombie until reaped)");
        Assert.ThrowsExactly<StubProcessExitedException>(() => h.MapNew(0x70_0000, 1, MemoryAccess.Read));
        h.Space.Dispose();
        Assert.IsFalse(Directory.Exists($"/proc/{pid}"), "and reaped");
    }

    [TestMethod]
    public void WaitOnADeadLeaderDoesNotHangWhileAnotherTracerIsBusy()
    {
        using var h = new Harness();
        h.Load(a => a.syscall());
        var context = h.Platform.CreateExecutionContext(h.Space);
        using var adopted = new ManualResetEventSlim();
        using var release = new ManualResetEventSlim();
        var tracer = new Thread(() =>
        {
            context.Switch(Harness.NewState());
            adopted.Set();
            release.Wait(); // busy elsewhere: never waits for its stub thread
            context.Dispose();
        })
        { IsBackground = true };
        tracer.Start();
        adopted.Wait();
        int pid = h.Space.StubProcessId;

        kill(pid, SIGKILL);

        // The kernel holds the dead leader back until the other thread is reaped; the watchdog reaps it.
        try
        {
            Harness.OnThread(() => Assert.IsTrue(h.Space.Leader.Wait().Signaled), timeoutSeconds: 20);
        }
        finally
        {
            release.Set();
            tracer.Join();
        }

        Assert.IsFalse(Directory.Exists($"/proc/{pid}"));
    }

    [TestMethod]
    public void SwitchFromAnotherThreadIsRejected()
    {
        using var h = new Harness();
        h.Load(a => a.syscall());
        using var context = h.Platform.CreateExecutionContext(h.Space);
        var state = Harness.NewState();
        Harness.OnThread(() => Assert.AreEqual(SwitchReason.Syscall, context.Switch(state).Reason));

        var error = Assert.ThrowsExactly<InvalidOperationException>(() => context.Switch(state));
        StringAssert.Contains(error.Message, "traced by host thread");
    }

    [TestMethod]
    public void PlatformDisposeKillsEveryStub()
    {
        var platform = new PtracePlatform();
        using var memory = new AppKernel.Sentry.Memory.MemoryFile(maxSize: 16L << 20);
        var first = (PtraceAddressSpace)platform.CreateAddressSpace(memory);
        var second = (PtraceAddressSpace)platform.CreateAddressSpace(memory);
        Assert.AreNotEqual(first.StubProcessId, second.StubProcessId, "each address space is its own stub process");

        platform.Dispose();

        Assert.IsFalse(Directory.Exists($"/proc/{first.StubProcessId}"));
        Assert.IsFalse(Directory.Exists($"/proc/{second.StubProcessId}"));
    }
}
