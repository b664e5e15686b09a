using System.Diagnostics;
using static Iced.Intel.AssemblerRegisters;

namespace AppKernel.Platform.Kvm.Tests;

/// <summary>Prints (never asserts) what a syscall round trip and a bare exit cost here; figures belong in bench/.</summary>
[TestClass]
public sealed class RoundTripTimingTests
{
    public TestContext TestContext { get; set; } = null!;

    [TestMethod]
    public void MedianSyscallRoundTripAndBareExitFloor()
    {
        using var m = new Machine();
        m.Load(a =>
        {
            var loop = a.CreateLabel();
            a.Label(ref loop);
            a.syscall();
            a.jmp(loop);
        });
        Machine.OnThread(() =>
        {
            using var context = m.Platform.CreateExecutionContext(m.Space);
            var state = Machine.NewState();
            const int Rounds = 3000;
            var samples = new double[Rounds];
            for (int i = 0; i < 200; i++)
            {
                context.Switch(state);
            }

            long before = GC.GetAllocatedBytesForCurrentThread();
            for (int i = 0; i < Rounds; i++)
            {
                long start = Stopwatch.GetTimestamp();
                var result = context.Switch(state);
                samples[i] = Stopwatch.GetElapsedTime(start).TotalMicroseconds;
                if (result.Reason != SwitchReason.Syscall)
                {
                    Assert.Fail($"unexpected {result}");
                }
            }

            long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
            var floor = new double[Rounds];
            var vcpu = ((KvmExecutionContext)context).VcpuForTests;
            for (int i = 0; i < Rounds; i++)
            {
                long start = Stopwatch.GetTimestamp();
                vcpu.RunBare();
                floor[i] = Stopwatch.GetElapsedTime(start).TotalMicroseconds;
            }

            Array.Sort(samples);
            Array.Sort(floor);
            TestContext.WriteLine($"KVM syscall round trip: median {samples[Rounds / 2]:0.0} us (p10 {samples[Rounds / 10]:0.0}, p90 {samples[Rounds * 9 / 10]:0.0}), {allocated} bytes allocated over {Rounds} switches");
            TestContext.WriteLine($"KVM bare exit (KVM_RUN to hlt and back): median {floor[Rounds / 2]:0.0} us");
            Console.WriteLine($"KVM syscall round trip: median {samples[Rounds / 2]:0.0} us; bare exit median {floor[Rounds / 2]:0.0} us; allocated {allocated} bytes");
        });
    }
}
