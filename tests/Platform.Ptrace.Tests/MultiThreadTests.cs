using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace AppKernel.Platform.Ptrace.Tests;

[TestClass]
public sealed class MultiThreadTests
{
    [TestMethod]
    public void TwoContextsShareOneAddressSpace()
    {
        using var h = new Harness();
        Assert.IsTrue(h.Platform.Capabilities.HasFlag(PlatformCapabilities.MultipleThreads));

        // A tracer thread that lives on would keep unreaped stub threads as traced zombies.
        Assert.IsFalse(h.Platform.Capabilities.HasFlag(PlatformCapabilities.ReusableTaskThreads));
        var (_, data) = h.Load(a =>
        {
            // Each thread adds its rdi to a shared counter 1000 times, one syscall per step.
            var loop = a.CreateLabel();
            a.Label(ref loop);
            a.@lock.add(__qword_ptr[Harness.DataAddress], rdi);
            a.mov(eax, 24);
            a.syscall();
            a.jmp(loop);
        });
        var contexts = new[] { h.Platform.CreateExecutionContext(h.Space), h.Platform.CreateExecutionContext(h.Space) };
        var tids = new int[2];
        var errors = new Exception?[2];
        var threads = new Thread[2];
        for (int t = 0; t < 2; t++)
        {
            int index = t;
            threads[t] = new Thread(() =>
            {
                try
                {
                    var context = contexts[index];
                    var state = Harness.NewState();
                    state.Registers.Rdi = (ulong)(index + 1);
                    for (int i = 0; i < 1000; i++)
                    {
                        Assert.AreEqual(SwitchReason.Syscall, context.Switch(state).Reason);
                    }

                    // Each tracer can map into the shared address space from its own stub thread.
                    h.MapNew(0x100_0000 + ((ulong)index * 0x10_0000), 1, MemoryAccess.Read);
                    tids[index] = ((PtraceExecutionContext)context).StubThreadId;
                    context.Dispose();
                }
                catch (Exception e)
                {
                    errors[index] = e;
                }
            });
            threads[t].Start();
        }

        foreach (var thread in threads)
        {
            Assert.IsTrue(thread.Join(TimeSpan.FromSeconds(60)), "hang");
        }

        Assert.IsNull(errors[0], errors[0]?.ToString());
        Assert.IsNull(errors[1], errors[1]?.ToString());
        Assert.AreEqual(3000UL, h.ReadData(data), "both threads wrote the same memory");
        Assert.AreNotEqual(tids[0], tids[1]);
        var maps = StubMaps.Read(h.Space.StubProcessId);
        Assert.IsTrue(maps.Any(m => m.Start == 0x100_0000) && maps.Any(m => m.Start == 0x110_0000));
    }

    [TestMethod]
    public void ContextCreatedOnOneThreadIsAdoptedByTheThreadThatRunsIt()
    {
        using var h = new Harness();
        h.Load(a => a.syscall());
        var context = h.Platform.CreateExecutionContext(h.Space);
        Harness.OnThread(() =>
        {
            Assert.AreEqual(SwitchReason.Syscall, context.Switch(Harness.NewState()).Reason);
            context.Dispose();
        });
    }

    [TestMethod]
    public void ContextDisposedBeforeItRanEndsItsStubThread()
    {
        using var h = new Harness();
        var context = (PtraceExecutionContext)h.Platform.CreateExecutionContext(h.Space);
        int tid = context.StubThreadId;
        Assert.IsTrue(Directory.Exists($"/proc/{h.Space.StubProcessId}/task/{tid}"));
        context.Dispose();
        Assert.IsFalse(Directory.Exists($"/proc/{h.Space.StubProcessId}/task/{tid}"));
    }
}
