using System.Diagnostics;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace AppKernel.Platform.Ptrace.Tests;

[TestClass]
public sealed class CpuTimeTests
{
    [TestMethod]
    public void CpuTimeCountsTheProgramsComputingAndKeepsItsLastFigureAfterDispose()
    {
        Harness.OnThread(() =>
        {
            using var h = new Harness();
            h.Load(a =>
            {
                var loop = a.CreateLabel();
                a.Label(ref loop);
                a.add(rbx, 1);
                a.jmp(loop);
            });
            // Disposed on every path: a failed assertion must not leave the stub running under the harness.
            using var context = h.Platform.CreateExecutionContext(h.Space);
            var state = Harness.NewState();
            Assert.IsLessThan(TimeSpan.FromMilliseconds(5), context.CpuTime, "only the stub's start so far");

            // At least 300 ms of wall time, and then until the program has had 40 ms of CPU (a loaded
            // machine may give it far less than the wall time), at most 20 s.
            var interrupter = new Thread(() =>
            {
                Thread.Sleep(300);
                var limit = Stopwatch.StartNew();
                while (context.CpuTime < TimeSpan.FromMilliseconds(40) && limit.Elapsed < TimeSpan.FromSeconds(20))
                {
                    Thread.Sleep(20);
                }

                context.Interrupt();
            });
            var wall = Stopwatch.StartNew();
            interrupter.Start();
            Assert.AreEqual(SwitchReason.Interrupted, context.Switch(state).Reason);
            interrupter.Join();
            wall.Stop();

            // CPU time is at least what the interrupter waited for, never more than the wall time.
            var used = context.CpuTime;
            Assert.IsGreaterThan(TimeSpan.FromMilliseconds(20), used);
            Assert.IsLessThanOrEqualTo(wall.Elapsed + TimeSpan.FromMilliseconds(20), used);

            // Read from another thread, it is the same figure (the program is stopped).
            TimeSpan fromElsewhere = default;
            var reader = new Thread(() => fromElsewhere = context.CpuTime);
            reader.Start();
            reader.Join();
            Assert.IsLessThan(TimeSpan.FromMilliseconds(5), (fromElsewhere - used).Duration());

            context.Dispose();
            Assert.IsGreaterThanOrEqualTo(used, context.CpuTime);
            Assert.IsLessThan(TimeSpan.FromMilliseconds(5), context.CpuTime - used);
        });
    }
}
