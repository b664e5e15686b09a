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

    /// <summary>Prints the cost of an injected mmap + munmap pair and of creating an address space with its first context.</summary>
    [TestMethod]
    public void MapAndCreationCosts()
    {
        Harness.OnThread(() =>
        {
            using var h = new Harness();
            h.Load(a => a.syscall());
            using var context = h.Platform.CreateExecutionContext(h.Space);
            var state = Harness.NewState();
            context.Switch(state);
            long offset = h.Memory.Allocate(Harness.Page);
            const int rounds = 2000;
            var samples = new long[rounds];
            for (int i = 0; i < rounds; i++)
            {
                long start = Stopwatch.GetTimestamp();
                h.Space.Map(0x1000_0000, Harness.Page, offset, MemoryAccess.ReadWrite);
                h.Space.Unmap(0x1000_0000, Harness.Page);
                samples[i] = Stopwatch.GetTimestamp() - start;
            }

            Array.Sort(samples);
            string line = $"injected mmap + munmap from the tracer thread: median {samples[rounds / 2] * 1e6 / Stopwatch.Frequency:F1} us";
            Console.WriteLine(line);
            TestContext.WriteLine(line);

            const int spaces = 20;
            var creation = new long[spaces];
            for (int i = 0; i < spaces; i++)
            {
                long start = Stopwatch.GetTimestamp();
                using var space = h.Platform.CreateAddressSpace(h.Memory);
                using var first = h.Platform.CreateExecutionContext(space);
                first.Interrupt();
                first.Switch(state); // adopts the stub thread, returns at once
                creation[i] = Stopwatch.GetTimestamp() - start;
            }

            Array.Sort(creation);
            line = $"address space + first context (spawn, seize, clone, adopt): median {creation[spaces / 2] * 1e3 / Stopwatch.Frequency:F2} ms";
            Console.WriteLine(line);
            TestContext.WriteLine(line);
        });
    }
}
