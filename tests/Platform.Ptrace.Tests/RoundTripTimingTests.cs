using System.Diagnostics;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace AppKernel.Platform.Ptrace.Tests;

[TestClass]
public sealed class RoundTripTimingTests
{
    public TestContext TestContext { get; set; } = null!;

    /// <summary>Prints (never asserts) the cost of one program syscall round trip: syscall, Switch returns, Switch again.</summary>
    [TestMethod]
    public void SyscallRoundTripMedian()
    {
        foreach (bool pinned in new[] { true, false })
        {
            Harness.OnThread(() =>
            {
                using var h = new Harness();
                h.Platform.PinThreadsToCpus = pinned;
                h.Load(a =>
                {
                    var loop = a.CreateLabel();
                    a.Label(ref loop);
                    a.mov(eax, 39);
                    a.syscall();
                    a.jmp(loop);
                });
                using var context = h.Platform.CreateExecutionContext(h.Space);
                var state = Harness.NewState();
                for (int i = 0; i < 2000; i++)
                {
                    context.Switch(state);
                    state.Registers.Rax = 1;
                }

                const int rounds = 20_000;
                var samples = new long[rounds];
                long allocatedBefore = GC.GetAllocatedBytesForCurrentThread();
                for (int i = 0; i < rounds; i++)
                {
                    long start = Stopwatch.GetTimestamp();
                    context.Switch(state);
                    state.Registers.Rax = 1;
                    samples[i] = Stopwatch.GetTimestamp() - start;
                }

                long allocated = GC.GetAllocatedBytesForCurrentThread() - allocatedBefore;
                Array.Sort(samples);
                double Micro(long ticks) => ticks * 1e6 / Stopwatch.Frequency;
                string line = $"syscall round trip ({(pinned ? "pinned to one CPU" : "unpinned")}): median {Micro(samples[rounds / 2]):F1} us, " +
                    $"p10 {Micro(samples[rounds / 10]):F1} us, p90 {Micro(samples[rounds * 9 / 10]):F1} us, p99 {Micro(samples[rounds * 99 / 100]):F1} us; " +
                    $"{allocated} bytes allocated in {rounds} switches";
                Console.WriteLine(line);
                TestContext.WriteLine(line);
                Assert.AreEqual(39UL, state.Registers.OrigRax);
            });
        }
    }
}
