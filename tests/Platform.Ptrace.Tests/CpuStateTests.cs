using System.Runtime.Intrinsics.X86;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace AppKernel.Platform.Ptrace.Tests;

[TestClass]
public sealed class CpuStateTests
{
    private const int XmmOffset = 160, XstateBvOffset = 512;

    [TestMethod]
    public void ExtendedStateSizeComesFromCpuidAndMatchesTheKernel()
    {
        var (_, ebx, _, _) = X86Base.CpuId(0xD, 0);
        Assert.AreEqual(ebx, PtracePlatform.ExtendedStateSize);
        Console.WriteLine($"XSAVE image size: {PtracePlatform.ExtendedStateSize} bytes");

        Harness.OnThread(() =>
        {
            using var h = new Harness();
            h.Load(a => a.syscall());
            using var context = h.Platform.CreateExecutionContext(h.Space);
            var state = Harness.NewState();
            context.LoadExtendedState(state);

            // The initial FPU state: MXCSR 0x1f80 at offset 24, x87 control word 0x37f at 0.
            Assert.AreEqual(0x1f80u, BitConverter.ToUInt32(state.ExtendedState, 24));
            Assert.AreEqual((ushort)0x37f, BitConverter.ToUInt16(state.ExtendedState, 0));

            var small = new CpuState(512);
            Assert.ThrowsExactly<ArgumentException>(() => context.LoadExtendedState(small));
        });
    }

    [TestMethod]
    public void FsBaseSetByTheSentryIsSeenByTheProgram()
    {
        Harness.OnThread(() =>
        {
            using var h = new Harness();
            var (_, data) = h.Load(a =>
            {
                a.mov(rbx, __qword_ptr.fs[0x8]);
                a.mov(eax, 1);
                a.syscall();
            });
            BitConverter.TryWriteBytes(h.Memory.GetSpan(data + 8, 8), 0x1122334455667788UL);
            using var context = h.Platform.CreateExecutionContext(h.Space);
            var state = Harness.NewState();
            state.Registers.FsBase = Harness.DataAddress;

            var result = context.Switch(state);

            Assert.AreEqual(SwitchReason.Syscall, result.Reason);
            Assert.AreEqual(0x1122334455667788UL, state.Registers.Rbx);
            Assert.AreEqual(Harness.DataAddress, state.Registers.FsBase, "fs base survives the stop");
        });
    }

    [TestMethod]
    public void YmmStateFlowsBothWaysAndSurvivesInjections()
    {
        if (!Avx2.IsSupported)
        {
            Assert.Inconclusive("no AVX2");
        }

        int avxOffset = X86Base.CpuId(0xD, 2).Ebx;
        Harness.OnThread(() =>
        {
            using var h = new Harness();
            var (_, data) = h.Load(a =>
            {
                a.vmovdqu(__ymmword_ptr[Harness.DataAddress], ymm0);
                a.vpcmpeqd(ymm1, ymm1, ymm1);
                a.mov(eax, 1);
                a.syscall();
                a.vmovdqu(__ymmword_ptr[Harness.DataAddress + 32], ymm1);
                a.mov(eax, 2);
                a.syscall();
            });
            using var context = h.Platform.CreateExecutionContext(h.Space);
            var state = Harness.NewState();

            // Put a YMM0 value into the XSAVE image: low half in the legacy area, high half in the AVX component.
            context.LoadExtendedState(state);
            for (int i = 0; i < 16; i++)
            {
                state.ExtendedState[XmmOffset + i] = (byte)(0x10 + i);
                state.ExtendedState[avxOffset + i] = (byte)(0x80 + i);
            }

            state.ExtendedState[XstateBvOffset] |= 0b110; // SSE and AVX components present
            state.ExtendedStateDirty = true;

            var result = context.Switch(state);
            Assert.AreEqual(SwitchReason.Syscall, result.Reason);
            Assert.IsFalse(state.ExtendedStateDirty, "the platform clears the flag once written");
            var stored = h.Memory.GetSpan(data, 32).ToArray();
            for (int i = 0; i < 16; i++)
            {
                Assert.AreEqual((byte)(0x10 + i), stored[i]);
                Assert.AreEqual((byte)(0x80 + i), stored[16 + i]);
            }

            // The program's YMM1 is read back.
            context.LoadExtendedState(state);
            for (int i = 0; i < 16; i++)
            {
                Assert.AreEqual(0xff, state.ExtendedState[XmmOffset + 16 + i]);
                Assert.AreEqual(0xff, state.ExtendedState[avxOffset + 16 + i]);
            }

            // Injected host syscalls in between leave the program's vector state alone.
            h.MapNew(0x90_0000, 4, MemoryAccess.ReadWrite);
            h.Space.Protect(0x90_0000, 4 * Harness.Page, MemoryAccess.Read);
            result = context.Switch(state);
            Assert.AreEqual(SwitchReason.Syscall, result.Reason);
            Assert.AreEqual(2UL, state.Registers.OrigRax);
            foreach (byte b in h.Memory.GetSpan(data + 32, 32))
            {
                Assert.AreEqual(0xff, b);
            }
        });
    }

    [TestMethod]
    public void GeneralRegistersRoundTrip()
    {
        Harness.OnThread(() =>
        {
            using var h = new Harness();
            h.Load(a =>
            {
                a.add(r15, 1);
                a.add(rbx, 1);
                a.syscall();
            });
            using var context = h.Platform.CreateExecutionContext(h.Space);
            var state = Harness.NewState();
            state.Registers.R15 = 100;
            state.Registers.Rbx = 200;
            state.Registers.Rsp = 0xdead0000;
            state.Registers.Rax = 5;

            context.Switch(state);

            Assert.AreEqual(101UL, state.Registers.R15);
            Assert.AreEqual(201UL, state.Registers.Rbx);
            Assert.AreEqual(0xdead0000UL, state.Registers.Rsp);
            Assert.AreEqual(5UL, state.Registers.OrigRax);
            Assert.AreEqual(0x33UL, state.Registers.Cs, "a fresh state gets the user code selector");
        });
    }
}

[TestClass]
public sealed class ExtendedStateCopyTests
{
    [TestMethod]
    public void CopiedStateIsWrittenBeforeItIsLoaded()
    {
        Harness.OnThread(() =>
        {
            using var h = new Harness();
            h.Load(a =>
            {
                a.movq(rbx, xmm3);
                a.syscall();
            });
            using var parent = h.Platform.CreateExecutionContext(h.Space);
            using var child = h.Platform.CreateExecutionContext(h.Space);
            var parentState = Harness.NewState();
            parent.LoadExtendedState(parentState);
            BitConverter.TryWriteBytes(parentState.ExtendedState.AsSpan(160 + (3 * 16)), 0xabcdUL); // xmm3
            parentState.ExtendedState[512] |= 0b10; // XSTATE_BV: the SSE component is present
            parentState.ExtendedStateDirty = true;
            parent.Switch(parentState);
            Assert.AreEqual(0xabcdUL, parentState.Registers.Rbx);

            // A clone copies the parent's state (dirty); loading it must not lose the copy.
            var childState = Harness.NewState();
            childState.CopyFrom(parentState);
            child.LoadExtendedState(childState);
            Assert.IsFalse(childState.ExtendedStateDirty);
            Assert.AreEqual(0xabcdUL, BitConverter.ToUInt64(childState.ExtendedState, 160 + (3 * 16)));
            childState.Registers.Rip = Harness.CodeAddress;
            child.Switch(childState);
            Assert.AreEqual(0xabcdUL, childState.Registers.Rbx);
        });
    }
}
