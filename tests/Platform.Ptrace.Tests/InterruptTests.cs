using System.Diagnostics;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace AppKernel.Platform.Ptrace.Tests;

[TestClass]
public sealed class InterruptTests
{
    private static void Spin(Assembler a)
    {
        var loop = a.CreateLabel();
        a.Label(ref loop);
        a.add(rbx, 1);
        a.jmp(loop);
    }

    [TestMethod]
    public void InterruptFromAnotherThreadStopsASpinningProgram()
    {
        Harness.OnThread(() =>
        {
            using var h = new Harness();
            h.Load(Spin);
            using var context = h.Platform.CreateExecutionContext(h.Space);
            var state = Harness.NewState();

            var interrupter = new Thread(() =>
            {
                Thread.Sleep(200);
                context.Interrupt();
            });
            var clock = Stopwatch.StartNew();
            interrupter.Start();
            var result = context.Switch(state);
            interrupter.Join();

            Assert.AreEqual(SwitchReason.Interrupted, result.Reason);
            Assert.IsGreaterThan(0UL, state.Registers.Rbx, "the program ran");
            Assert.IsTrue(state.Registers.Rip >= Harness.CodeAddress && state.Registers.Rip < Harness.CodeAddress + 16);
            Assert.IsLessThan(5000L, clock.ElapsedMilliseconds);

            // It resumes where it was.
            ulong before = state.Registers.Rbx;
            var again = new Thread(() =>
            {
                Thread.Sleep(50);
                context.Interrupt();
            });
            again.Start();
            Assert.AreEqual(SwitchReason.Interrupted, context.Switch(state).Reason);
            again.Join();
            Assert.IsGreaterThan(before, state.Registers.Rbx);
        });
    }

    [TestMethod]
    public void InterruptBeforeSwitchMakesTheNextSwitchReturnAtOnceAndOnlyOnce()
    {
        Harness.OnThread(() =>
        {
            using var h = new Harness();
            h.Load(a =>
            {
                a.mov(eax, 3);
                a.syscall();
            });
            using var context = h.Platform.CreateExecutionContext(h.Space);
            var state = Harness.NewState();

            context.Interrupt();
            Assert.AreEqual(SwitchReason.Interrupted, context.Switch(state).Reason);
            Assert.AreEqual(Harness.CodeAddress, state.Registers.Rip, "nothing ran");
            Assert.AreEqual(SwitchReason.Syscall, context.Switch(state).Reason);
            Assert.AreEqual(3UL, state.Registers.OrigRax);
        });
    }

    [TestMethod]
    public void InterruptStormNeverLosesOrHangs()
    {
        Harness.OnThread(() =>
        {
            using var h = new Harness();
            h.Load(a =>
            {
                var loop = a.CreateLabel();
                a.Label(ref loop);
                a.mov(eax, 24);
                a.syscall();
                a.jmp(loop);
            });
            using var context = h.Platform.CreateExecutionContext(h.Space);
            var state = Harness.NewState();
            using var stop = new CancellationTokenSource();
            var storm = new Thread(() =>
            {
                while (!stop.IsCancellationRequested)
                {
                    context.Interrupt();
                    Thread.SpinWait(500);
                }
            });
            storm.Start();
            int syscalls = 0, interrupts = 0;
            for (int i = 0; i < 20_000; i++)
            {
                var reason = context.Switch(state).Reason;
                if (reason == SwitchReason.Syscall)
                {
                    Assert.AreEqual(24UL, state.Registers.OrigRax);
                    syscalls++;
                }
                else
                {
                    Assert.AreEqual(SwitchReason.Interrupted, reason);
                    interrupts++;
                }
            }

            stop.Cancel();
            storm.Join();
            Console.WriteLine($"interrupt storm: {syscalls} syscall stops, {interrupts} interrupts");
            Assert.IsGreaterThan(0, syscalls);
            Assert.IsGreaterThan(0, interrupts);
        });
    }
}
