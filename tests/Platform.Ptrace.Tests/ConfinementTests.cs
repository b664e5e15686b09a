using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace AppKernel.Platform.Ptrace.Tests;

[TestClass]
public sealed class ConfinementTests
{
    private const ulong Gadget = 0x7ffb_0000_0000;

    [TestMethod]
    public void StubHoldsOnlyTheMemoryFileAndRunsUnderSeccomp()
    {
        using var h = new Harness();
        int pid = h.Space.StubProcessId;

        Assert.AreEqual("appkernel-stub", File.ReadAllText($"/proc/{pid}/comm").Trim());
        var fds = Directory.GetFiles($"/proc/{pid}/fd").Select(Path.GetFileName).ToArray();
        CollectionAssert.AreEqual(new[] { "0" }, fds);
        StringAssert.Contains(new FileInfo($"/proc/{pid}/fd/0").LinkTarget ?? "", "appkernel-memory");

        Assert.AreEqual("/", new FileInfo($"/proc/{pid}/cwd").LinkTarget);
        StringAssert.Matches(File.ReadAllText($"/proc/{pid}/limits"), new System.Text.RegularExpressions.Regex(@"Max core file size\s+0\s+0"));

        string status = File.ReadAllText($"/proc/{pid}/status");
        StringAssert.Matches(status, new System.Text.RegularExpressions.Regex(@"Seccomp:\s+2"));
        StringAssert.Matches(status, new System.Text.RegularExpressions.Regex(@"NoNewPrivs:\s+1"));
    }

    [TestMethod]
    public void ProgramJumpingToTheGadgetOnlyMakesASyscallStop()
    {
        Harness.OnThread(() =>
        {
            using var h = new Harness();
            const ulong target = 0x1000_0000;
            h.Load(a =>
            {
                // Set up a host mmap of the memory file, exactly as an injection would, and jump to the gadget.
                a.mov(eax, 9);
                a.mov(rdi, target);
                a.mov(esi, 0x1000);
                a.mov(edx, 3);
                a.mov(r10d, 0x11);
                a.xor(r8d, r8d);
                a.xor(r9d, r9d);
                a.mov(r11, Gadget);
                a.jmp(r11);
            });
            using var context = h.Platform.CreateExecutionContext(h.Space);
            var state = Harness.NewState();

            var result = context.Switch(state);

            Assert.AreEqual(SwitchReason.Syscall, result.Reason);
            Assert.AreEqual(9UL, state.Registers.OrigRax);
            Assert.AreEqual(Gadget + 2, state.Registers.Rip);
            Assert.IsFalse(StubMaps.Read(h.Space.StubProcessId).Any(m => m.Start <= target && target < m.End), "nothing was mapped on the host");

            // The int3 after the gadget is just a SIGTRAP for the Sentry.
            result = context.Switch(state);
            Assert.AreEqual(SwitchReason.Signal, result.Reason);
            Assert.AreEqual(5, result.Signal);
        });
    }

    [TestMethod]
    public void HostSyscallOutsideTheAllowListKillsTheStub()
    {
        using var h = new Harness();
        int pid = h.Space.StubProcessId;

        // getpid from the gadget: not one the platform injects.
        var error = Assert.ThrowsExactly<StubProcessExitedException>(() => h.Space.Inject(39, 0, 0, 0, 0, 0, 0));
        StringAssert.Contains(error.Message, "signal 31", "killed by seccomp (SIGSYS)");
        Assert.IsFalse(Directory.Exists($"/proc/{pid}"), "the stub was reaped");
    }

    [TestMethod]
    public void MmapOfAnotherFileDescriptorKillsTheStub()
    {
        using var h = new Harness();
        var error = Assert.ThrowsExactly<StubProcessExitedException>(() => h.Space.Inject(9, 0x10_0000, 0x1000, 3, 0x11, 1, 0));
        StringAssert.Contains(error.Message, "signal 31");
    }
}

[TestClass]
public sealed class LegacyEntryTests
{
    private const int SiKernel = 0x80;
    private const ulong Vsyscall = 0xffff_ffff_ff60_0000;

    [TestMethod]
    public void Int80IsASegvLikeOnAKernelWithoutIa32Emulation()
    {
        Harness.OnThread(() =>
        {
            using var h = new Harness();
            h.Load(a =>
            {
                a.mov(eax, 20);
                a.@int(0x80);
            });
            using var context = h.Platform.CreateExecutionContext(h.Space);
            var state = Harness.NewState();

            var result = context.Switch(state);

            Assert.AreEqual(SwitchReason.Fault, result.Reason);
            Assert.AreEqual(11, result.Signal);
            Assert.AreEqual(SiKernel, result.SignalCode);
            Assert.AreEqual(Harness.CodeAddress + 5, state.Registers.Rip, "rip on the int 0x80");
            Assert.AreEqual(20UL, state.Registers.Rax);
        });
    }

    [TestMethod]
    public void VsyscallCallIsAFaultAtTheVsyscallAddressAndNothingRunsOnTheHost()
    {
        Harness.OnThread(() =>
        {
            using var h = new Harness();
            var (_, data) = h.Load(a =>
            {
                a.mov(rdi, Harness.DataAddress);   // time(&data[0]) through the legacy page
                a.mov(rax, Vsyscall + 0x400);
                a.call(rax);
                a.mov(eax, 1);
                a.syscall();
            });
            using var context = h.Platform.CreateExecutionContext(h.Space);
            var state = Harness.NewState();
            ulong stack = Harness.DataAddress + 0x800;
            state.Registers.Rsp = stack;

            var result = context.Switch(state);

            Assert.AreEqual(SwitchReason.Fault, result.Reason);
            Assert.AreEqual(1, result.SignalCode, "SEGV_MAPERR, as with vsyscall=none");
            Assert.AreEqual(Vsyscall + 0x400, result.FaultAddress);
            Assert.AreEqual(Vsyscall + 0x400, state.Registers.Rip);
            Assert.AreEqual(stack - 8, state.Registers.Rsp, "the return address is still pushed");
            ulong returnAddress = h.ReadData(data, 0x7f8 / 8);
            Assert.AreEqual(Harness.CodeAddress + 0x16, returnAddress);
            Assert.AreEqual(0UL, h.ReadData(data), "the host did not run time()");

            // The Sentry emulates it (here: returns 7) and the program goes on.
            state.Registers.Rax = 7;
            state.Registers.Rip = returnAddress;
            state.Registers.Rsp += 8;
            result = context.Switch(state);
            Assert.AreEqual(SwitchReason.Syscall, result.Reason);
            Assert.AreEqual(1UL, state.Registers.OrigRax);
        });
    }
}
