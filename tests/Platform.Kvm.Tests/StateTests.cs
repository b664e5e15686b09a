using static Iced.Intel.AssemblerRegisters;

namespace AppKernel.Platform.Kvm.Tests;

[TestClass]
public sealed class StateTests
{
    [TestMethod]
    public void FsBaseIsLoadedAndReportedBack()
    {
        using var m = new Machine();
        var (_, data) = m.Load(a =>
        {
            a.mov(rax, __qword_ptr.fs[8]);
            a.syscall();
        });
        m.Memory.GetSpan(data + 8, 8).Fill(0x5A);
        Machine.OnThread(() =>
        {
            using var context = m.Platform.CreateExecutionContext(m.Space);
            var state = Machine.NewState();
            state.Registers.FsBase = Machine.Data;
            state.Registers.GsBase = 0x1234_0000;
            Assert.AreEqual(SwitchReason.Syscall, context.Switch(state).Reason);
            Assert.AreEqual(0x5A5A_5A5A_5A5A_5A5AUL, state.Registers.Rax);
            Assert.AreEqual(Machine.Data, state.Registers.FsBase);
            Assert.AreEqual(0x1234_0000UL, state.Registers.GsBase);
        });
    }

    [TestMethod]
    public void GeneralRegistersSurviveAnInterruptionExactly()
    {
        using var m = new Machine();
        m.Load(a =>
        {
            a.mov(ecx, 0x11);
            a.mov(r11d, 0x22);
            a.ud2();
            a.syscall();
        });
        Machine.OnThread(() =>
        {
            using var context = m.Platform.CreateExecutionContext(m.Space);
            var state = Machine.NewState();
            Assert.AreEqual(SwitchReason.Signal, context.Switch(state).Reason);
            Assert.AreEqual((0x11UL, 0x22UL), (state.Registers.Rcx, state.Registers.R11));

            // Resume after the ud2 with rcx/r11 that sysret could not restore.
            state.Registers.Rip += 2;
            state.Registers.Rcx = 0xdead;
            state.Registers.R11 = 0xbeef;
            state.Registers.Rbx = 0x77;
            Assert.AreEqual(SwitchReason.Syscall, context.Switch(state).Reason);
            Assert.AreEqual(0x77UL, state.Registers.Rbx);
        });
    }

    [TestMethod]
    public void XmmAndYmmRoundTripThroughExtendedState()
    {
        using var m = new Machine();
        var (_, data) = m.Load(a =>
        {
            a.mov(rax, 0x1122_3344_5566_7788);
            a.movq(xmm0, rax);
            a.vpbroadcastq(ymm2, xmm0);
            a.syscall();
            a.vmovdqu(__ymmword_ptr[Machine.Data], ymm3);
            a.movdqu(__xmmword_ptr[Machine.Data + 32], xmm1);
            a.syscall();
        });
        Machine.OnThread(() =>
        {
            using var context = m.Platform.CreateExecutionContext(m.Space);
            var state = Machine.NewState();
            Assert.AreEqual(SwitchReason.Syscall, context.Switch(state).Reason);
            context.LoadExtendedState(state);
            var image = state.ExtendedState;
            Assert.AreEqual(0x1122_3344_5566_7788UL, BitConverter.ToUInt64(image, 160), "xmm0 in the legacy area");
            int ymmOffset = 576; // CPUID.(0DH,2).EBX on every CPU with AVX
            Assert.AreEqual(0x1122_3344_5566_7788UL, BitConverter.ToUInt64(image, ymmOffset + (2 * 16)), "ymm2's upper half");

            // Write xmm1 and ymm3 through the image.
            BitConverter.GetBytes(0xAAAA_BBBB_CCCC_DDDDUL).CopyTo(image, 160 + 16);
            for (int i = 0; i < 2; i++)
            {
                BitConverter.GetBytes(0x0101_0101_0101_0101UL * (ulong)(i + 1)).CopyTo(image, 160 + (3 * 16) + (8 * i));
                BitConverter.GetBytes(0x1010_1010_1010_1010UL * (ulong)(i + 1)).CopyTo(image, ymmOffset + (3 * 16) + (8 * i));
            }

            image[512] |= 0x6; // XSTATE_BV: SSE and AVX state present
            state.ExtendedStateDirty = true;
            Assert.AreEqual(SwitchReason.Syscall, context.Switch(state).Reason);
            Assert.IsFalse(state.ExtendedStateDirty);
            Assert.AreEqual(0x0101_0101_0101_0101UL, m.Read(data, 0));
            Assert.AreEqual(0x0202_0202_0202_0202UL, m.Read(data, 1));
            Assert.AreEqual(0x1010_1010_1010_1010UL, m.Read(data, 2));
            Assert.AreEqual(0x2020_2020_2020_2020UL, m.Read(data, 3));
            Assert.AreEqual(0xAAAA_BBBB_CCCC_DDDDUL, m.Read(data, 4));
        });
    }
}
