using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace AppKernel.Platform.Kvm;

/// <summary>
/// The ring-0 code of every vCPU, assembled with Iced. It is deliberately tiny: on a KVM whose ring 0
/// is emulated instruction by instruction (kvm-pvm without hardware virtualisation, as on this project's
/// machines) every supervisor instruction costs about a microsecond, so the program's registers cross
/// through KVM_CAP_SYNC_REGS and the exception frame, and ring 0 executes one <c>hlt</c> on the way out
/// and one <c>iretq</c> on the way back.
/// </summary>
/// <remarks>
/// <para>Exits: each IDT vector's gate points at its own <c>hlt</c> (4 bytes apart), so the address the
/// vCPU stops after names the vector; the CPU has pushed the exception frame (and error code) on IST1,
/// this vCPU's stack, where the Sentry reads it. Syscalls: where the hypervisor emulates <c>syscall</c>
/// without leaving user mode (kvm-pvm), MSR_LSTAR points at the user-accessible <see cref="SyscallPage"/>,
/// whose <c>out</c> stops the vCPU in user mode and no ring-0 code runs at all; elsewhere it points at
/// <see cref="Image.SyscallStop"/>, a <c>hlt</c> in a supervisor-only page: a CPU that enters ring 0 on
/// <c>syscall</c> stops there with the user's registers intact (and a user-mode emulation would fault
/// fetching it, which the Sentry also recognises as the syscall).</para>
/// <para>Entries: the Sentry writes an iret frame below the stack top, the program's general registers
/// through the sync-regs area, and points RIP at <see cref="Image.Return"/> (<c>iretq</c>), or at
/// <see cref="Image.FlushAndReturn"/>, which reloads CR3 from the vCPU page first (a new address space,
/// or a TLB flush after Unmap/Protect). The service vCPU runs <see cref="Image.Work"/>: rewrite
/// page-table entries in place (so that a hypervisor shadowing the page tables sees the change), stop.</para>
/// </remarks>
internal static class Trampoline
{
    /// <summary>Offsets (from the code start) of the entry points and the first vector stub.</summary>
    public sealed record Image(byte[] Code, int Return, int FlushAndReturn, int Work, int Halt, int SyscallStop, int Vectors);

    /// <summary>Bytes between two vector stubs.</summary>
    public const int VectorStubSize = 4;

    /// <summary>Exceptions for which the CPU pushes an error code.</summary>
    public static bool HasErrorCode(int vector) => vector is 8 or 10 or 11 or 12 or 13 or 14 or 17 or 21 or 29 or 30;

    /// <summary>The vectors with an IDT gate: the 32 exceptions and the kick interrupt.</summary>
    public static IEnumerable<int> HandledVectors => Enumerable.Range(0, 32).Append((int)VcpuPage.KickVector);

    /// <summary>Offset in the syscall page of the probe's <c>syscall</c> instruction.</summary>
    public const int SyscallProbe = 16;

    /// <summary>
    /// The syscall page (user-accessible, see <see cref="GuestLayout.SyscallPageOffset"/>): at 0, where
    /// MSR_LSTAR points when syscalls take the fast path, <c>out SyscallPort, al</c>: a hypervisor that
    /// emulates <c>syscall</c> without leaving user mode continues there in user mode and the I/O
    /// exit reaches the Sentry with the program's registers (RIP in RCX, RFLAGS in R11). At
    /// <see cref="SyscallProbe"/> the <c>syscall</c> the platform runs once to see which kind of hypervisor
    /// it has. Every other byte is <c>ud2</c>.
    /// </summary>
    public static byte[] SyscallPage()
    {
        var page = new byte[GuestLayout.PageSize];
        for (int i = 0; i < page.Length; i += 2)
        {
            page[i] = 0x0F; // ud2
            page[i + 1] = 0x0B;
        }

        page[0] = 0xE6; // out imm8, al
        page[1] = (byte)GuestLayout.SyscallPort;
        page[SyscallProbe] = 0x0F; // syscall
        page[SyscallProbe + 1] = 0x05;
        return page;
    }

    public static Image Build(ulong address)
    {
        var a = new Assembler(64);
        var ret = a.CreateLabel();
        var flush = a.CreateLabel();
        var work = a.CreateLabel();
        var halt = a.CreateLabel();
        var syscallStop = a.CreateLabel();
        var touchRun = a.CreateLabel();

        // ---- Return to the program: the iret frame is at RSP, the general registers are loaded. ----
        a.Label(ref ret);
        a.iretq();

        // ---- Load CR3 from the vCPU page (new address space, or a TLB flush), then return. ----
        // RSP is the iret frame, 40 bytes below the stack top; the vCPU page is the page before the stack.
        a.Label(ref flush);
        a.push(rax);
        a.mov(rax, __qword_ptr[rsp + (VcpuPage.Cr3 - VcpuPage.StackTop + 48)]);
        a.mov(cr3, rax);
        a.pop(rax);
        a.iretq();

        // ---- Service work: rewrite the listed runs of page-table entries in place, then stop. ----
        // Each run is copied onto itself with one `rep movsq` (RSI = RDI): every entry is written back
        // with its own value, which is all a shadowing hypervisor needs to see. Emulated, that costs
        // ≈ 0.7 µs an entry against ≈ 4.5 µs for a `lock or [entry], 0` loop (four instructions an
        // entry). Nothing else writes these entries meanwhile (the Sentry holds the space's lock, and
        // with accessed/dirty preset the hypervisor has no bit to set), so the copy needs no lock.
        // RSP is the stack top; DF is clear (the service vCPU starts with RFLAGS = 2).
        a.Label(ref work);
        a.mov(r9d, __dword_ptr[rsp + (VcpuPage.TouchCount - VcpuPage.StackTop)]);
        a.lea(r8, __[rsp + (VcpuPage.Touches - VcpuPage.StackTop)]);
        a.test(r9d, r9d);
        a.jz(halt);
        a.Label(ref touchRun);
        a.mov(rdi, __qword_ptr[r8]);
        a.mov(rsi, rdi);
        a.mov(rcx, __qword_ptr[r8 + 8]);
        a.rep.movsq();
        a.add(r8, 16);
        a.dec(r9d);
        a.jnz(touchRun);
        a.Label(ref halt);
        a.hlt();

        // ---- MSR_LSTAR: a syscall that reached ring 0 stops here, registers untouched. ----
        a.Label(ref syscallStop);
        a.hlt();
        a.hlt();

        // ---- One hlt per vector, VectorStubSize apart. ----
        var vectors = a.CreateLabel();
        a.Label(ref vectors);
        for (int vector = 0; vector < 256; vector++)
        {
            for (int i = 0; i < VectorStubSize; i++)
            {
                a.hlt();
            }
        }

        using var stream = new MemoryStream();
        var result = a.Assemble(new StreamCodeWriter(stream), address, BlockEncoderOptions.ReturnNewInstructionOffsets);
        int Offset(Label label) => (int)(result.GetLabelRIP(label) - address);
        return new Image(stream.ToArray(), Offset(ret), Offset(flush), Offset(work), Offset(halt), Offset(syscallStop), Offset(vectors));
    }
}
