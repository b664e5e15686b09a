using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;
using AppKernel.Platform.Kvm.Native;

namespace AppKernel.Platform.Kvm;

/// <summary>
/// The supervisor code every vCPU runs between the program and the Sentry, assembled with Iced.
/// </summary>
/// <remarks>
/// <para>It runs in PVM supervisor mode, where events from the program arrive without a stack switch:
/// the user's RIP, RCX, R11, RFLAGS and GS base are in the PVM vCPU structure, every other register
/// still holds the program's value, and GS points at this vCPU's page. The code saves the program's
/// registers into that page (in <see cref="Registers"/> layout), records why it stopped, and executes
/// <c>hlt</c>, which makes KVM_RUN return KVM_EXIT_HLT to the Sentry. The next KVM_RUN continues after
/// the <c>hlt</c>: the code carries out the Sentry's requests (switch page tables, rewrite page-table
/// entries, flush the TLB), loads the registers back from the page and returns to the program with
/// PVM's ERETU. Nothing else ever runs in supervisor mode.</para>
/// </remarks>
internal static class Trampoline
{
    /// <summary>The assembled code and its entry points (offsets from the start).</summary>
    public sealed record Image(byte[] Code, int SyscallEntry, int EventEntry, int Resume, int ReturnToUser, int Park);

    public static Image Build(ulong address)
    {
        // The main block sits after the three event entry slots (0, +256, +512 are PVM's).
        const int MainOffset = 0x300;
        var a = new Assembler(64);
        var syscallEntry = a.CreateLabel();
        var saveCommon = a.CreateLabel();
        var park = a.CreateLabel();
        var resume = a.CreateLabel();
        var noCr3 = a.CreateLabel();
        var noTouch = a.CreateLabel();
        var touchRun = a.CreateLabel();
        var touchEntry = a.CreateLabel();
        var noFlush = a.CreateLabel();
        var retu = a.CreateLabel();
        var stop = a.CreateLabel();

        // ---- Syscall entry (MSR_LSTAR): the program executed `syscall`. ----
        a.Label(ref syscallEntry);
        // Keep the user's stack pointer, move to this vCPU's own stack (PVM does not switch stacks).
        a.mov(__qword_ptr.gs[VcpuPage.Rsp], rsp);
        a.mov(rsp, __qword_ptr.gs[VcpuPage.KernelStackTop]);
        a.mov(__qword_ptr.gs[VcpuPage.Rax], rax);
        a.mov(__qword_ptr.gs[VcpuPage.OrigRax], rax);
        a.mov(__dword_ptr.gs[VcpuPage.Exit], (int)VcpuPage.ExitSyscall);

        // ---- Save the rest of the program's registers into the vCPU page. ----
        a.Label(ref saveCommon);
        a.mov(__qword_ptr.gs[VcpuPage.Rbx], rbx);
        a.mov(__qword_ptr.gs[VcpuPage.Rdx], rdx);
        a.mov(__qword_ptr.gs[VcpuPage.Rsi], rsi);
        a.mov(__qword_ptr.gs[VcpuPage.Rdi], rdi);
        a.mov(__qword_ptr.gs[VcpuPage.Rbp], rbp);
        a.mov(__qword_ptr.gs[VcpuPage.R8], r8);
        a.mov(__qword_ptr.gs[VcpuPage.R9], r9);
        a.mov(__qword_ptr.gs[VcpuPage.R10], r10);
        a.mov(__qword_ptr.gs[VcpuPage.R12], r12);
        a.mov(__qword_ptr.gs[VcpuPage.R13], r13);
        a.mov(__qword_ptr.gs[VcpuPage.R14], r14);
        a.mov(__qword_ptr.gs[VcpuPage.R15], r15);
        // RIP, RCX, R11, RFLAGS and the GS base were saved by PVM in its vCPU structure.
        a.mov(rax, __qword_ptr.gs[VcpuPage.PvcsRip]);
        a.mov(__qword_ptr.gs[VcpuPage.Rip], rax);
        a.mov(rax, __qword_ptr.gs[VcpuPage.PvcsRcx]);
        a.mov(__qword_ptr.gs[VcpuPage.Rcx], rax);
        a.mov(rax, __qword_ptr.gs[VcpuPage.PvcsR11]);
        a.mov(__qword_ptr.gs[VcpuPage.R11], rax);
        a.mov(eax, __dword_ptr.gs[VcpuPage.PvcsEflags]);
        a.mov(__qword_ptr.gs[VcpuPage.Eflags], rax);
        a.mov(rax, __qword_ptr.gs[VcpuPage.PvcsUserGsBase]);
        a.mov(__qword_ptr.gs[VcpuPage.GsBase], rax);
        // FS is not switched by PVM: the program's base is still loaded.
        a.rdfsbase(rax);
        a.mov(__qword_ptr.gs[VcpuPage.FsBase], rax);
        // The event is taken: clear PVM's "delivering" bits so a later event is not a nested one.
        a.mov(__word_ptr.gs[VcpuPage.PvcsEventVector], 0);

        // ---- Park: tell the Sentry (KVM_EXIT_HLT). The next KVM_RUN continues at resume. ----
        a.Label(ref park);
        a.mov(__dword_ptr.gs[VcpuPage.Phase], 1);
        a.hlt();
        a.Label(ref resume);
        a.mov(__dword_ptr.gs[VcpuPage.Phase], 0);

        // Switch page tables (a new address space for this vCPU), flushing the TLB.
        a.cmp(__dword_ptr.gs[VcpuPage.LoadCr3], 0);
        a.je(noCr3);
        a.mov(eax, (int)KvmAbi.PvmHcLoadPageTables);
        a.mov(ebx, 1);
        a.mov(r10, __qword_ptr.gs[VcpuPage.Cr3]);
        a.syscall();
        a.mov(__dword_ptr.gs[VcpuPage.LoadCr3], 0);
        a.Label(ref noCr3);

        // Rewrite page-table entries the Sentry changed (an atomic OR of 0 changes nothing but is a
        // write), so that a hypervisor shadowing the page tables notices the change.
        a.mov(ecx, __dword_ptr.gs[VcpuPage.TouchCount]);
        a.test(ecx, ecx);
        a.jz(noTouch);
        a.mov(rsi, __qword_ptr.gs[VcpuPage.Self]);
        a.add(rsi, VcpuPage.Touches);
        a.Label(ref touchRun);
        a.mov(rdi, __qword_ptr[rsi]);
        a.mov(rdx, __qword_ptr[rsi + 8]);
        a.Label(ref touchEntry);
        a.@lock.or(__qword_ptr[rdi], 0);
        a.add(rdi, 8);
        a.dec(rdx);
        a.jnz(touchEntry);
        a.add(rsi, 16);
        a.dec(ecx);
        a.jnz(touchRun);
        a.mov(__dword_ptr.gs[VcpuPage.TouchCount], 0);
        a.Label(ref noTouch);

        // Flush this vCPU's TLB (mappings of its address space changed since it last ran).
        a.cmp(__dword_ptr.gs[VcpuPage.FlushTlb], 0);
        a.je(noFlush);
        a.mov(eax, (int)KvmAbi.PvmHcTlbFlush);
        a.syscall();
        a.mov(__dword_ptr.gs[VcpuPage.FlushTlb], 0);
        a.Label(ref noFlush);

        // Work only: stop again.
        a.cmp(__dword_ptr.gs[VcpuPage.Command], 0);
        a.jne(park);

        // ---- Return to the program: ERETU takes RIP, RCX, R11, RFLAGS, CS, SS, GS base from PVM's structure. ----
        a.mov(__word_ptr.gs[VcpuPage.PvcsEventVector], KvmAbi.PvmEventVectorStandard);
        a.mov(rax, __qword_ptr.gs[VcpuPage.Rip]);
        a.mov(__qword_ptr.gs[VcpuPage.PvcsRip], rax);
        a.mov(rax, __qword_ptr.gs[VcpuPage.Rcx]);
        a.mov(__qword_ptr.gs[VcpuPage.PvcsRcx], rax);
        a.mov(rax, __qword_ptr.gs[VcpuPage.R11]);
        a.mov(__qword_ptr.gs[VcpuPage.PvcsR11], rax);
        a.mov(rax, __qword_ptr.gs[VcpuPage.Eflags]);
        a.mov(__dword_ptr.gs[VcpuPage.PvcsEflags], eax);
        a.mov(rax, __qword_ptr.gs[VcpuPage.GsBase]);
        a.mov(__qword_ptr.gs[VcpuPage.PvcsUserGsBase], rax);
        a.mov(__word_ptr.gs[VcpuPage.PvcsUserCs], 0x33);
        a.mov(__word_ptr.gs[VcpuPage.PvcsUserSs], 0x2b);
        a.mov(__qword_ptr.gs[VcpuPage.PvcsEventFlags], 0);
        a.mov(rax, __qword_ptr.gs[VcpuPage.FsBase]);
        a.wrfsbase(rax);
        // The general registers, the stack pointer last.
        a.mov(rbx, __qword_ptr.gs[VcpuPage.Rbx]);
        a.mov(rdx, __qword_ptr.gs[VcpuPage.Rdx]);
        a.mov(rsi, __qword_ptr.gs[VcpuPage.Rsi]);
        a.mov(rdi, __qword_ptr.gs[VcpuPage.Rdi]);
        a.mov(rbp, __qword_ptr.gs[VcpuPage.Rbp]);
        a.mov(r8, __qword_ptr.gs[VcpuPage.R8]);
        a.mov(r9, __qword_ptr.gs[VcpuPage.R9]);
        a.mov(r10, __qword_ptr.gs[VcpuPage.R10]);
        a.mov(r12, __qword_ptr.gs[VcpuPage.R12]);
        a.mov(r13, __qword_ptr.gs[VcpuPage.R13]);
        a.mov(r14, __qword_ptr.gs[VcpuPage.R14]);
        a.mov(r15, __qword_ptr.gs[VcpuPage.R15]);
        a.mov(rax, __qword_ptr.gs[VcpuPage.Rax]);
        a.mov(rsp, __qword_ptr.gs[VcpuPage.Rsp]);
        a.Label(ref retu);
        a.syscall();

        // ---- A fault in supervisor mode: keep what PVM saved, stop, and never continue. ----
        a.Label(ref stop);
        a.mov(__dword_ptr.gs[VcpuPage.Exit], (int)VcpuPage.ExitKernelFault);
        a.movzx(eax, __word_ptr.gs[VcpuPage.PvcsEventVector]);
        a.mov(__qword_ptr.gs[VcpuPage.KernelFaultVector], rax);
        a.mov(rax, __qword_ptr.gs[VcpuPage.PvcsRip]);
        a.mov(__qword_ptr.gs[VcpuPage.KernelFaultRip], rax);
        a.mov(rax, __qword_ptr.gs[VcpuPage.PvcsCr2]);
        a.mov(__qword_ptr.gs[VcpuPage.Cr2], rax);
        a.mov(__dword_ptr.gs[VcpuPage.Phase], 1);
        var again = a.CreateLabel();
        a.Label(ref again);
        a.hlt();
        a.jmp(again);

        ulong mainAddress = address + MainOffset;
        var main = Assemble(a, mainAddress, out var result);
        ulong LabelAddress(Label label) => result.GetLabelRIP(label);

        // ---- Event entry (MSR_PVM_EVENT_ENTRY): exceptions and interrupts from the program. ----
        var e = new Assembler(64);
        // Keep the user's stack pointer, move to this vCPU's own stack.
        e.mov(__qword_ptr.gs[VcpuPage.Rsp], rsp);
        e.mov(rsp, __qword_ptr.gs[VcpuPage.KernelStackTop]);
        e.mov(__qword_ptr.gs[VcpuPage.Rax], rax);
        e.mov(__qword_ptr.gs[VcpuPage.OrigRax], -1);
        // The vector (low byte of event_vector), the error code, and CR2 for page faults.
        e.movzx(eax, __byte_ptr.gs[VcpuPage.PvcsEventVector]);
        e.mov(__dword_ptr.gs[VcpuPage.Exit], eax);
        e.movzx(eax, __word_ptr.gs[VcpuPage.PvcsErrorCode]);
        e.mov(__dword_ptr.gs[VcpuPage.ErrorCode], eax);
        e.mov(rax, __qword_ptr.gs[VcpuPage.PvcsCr2]);
        e.mov(__qword_ptr.gs[VcpuPage.Cr2], rax);
        // x87 and SSE status for #MF and #XM (which FPE_* code Linux would report).
        e.fnstsw(__word_ptr.gs[VcpuPage.FpuStatus]);
        e.fnstcw(__word_ptr.gs[VcpuPage.FpuControl]);
        e.stmxcsr(__dword_ptr.gs[VcpuPage.Mxcsr]);
        e.jmp(LabelAddress(saveCommon));
        var eventCode = Assemble(e, address, out _);

        // ---- Supervisor events (+256, +512): a fault in this code itself; record it and stop for good. ----
        var s1 = new Assembler(64);
        s1.jmp(LabelAddress(stop));
        var supervisorException = Assemble(s1, address + 256, out _);
        var s2 = new Assembler(64);
        s2.jmp(LabelAddress(stop));
        var supervisorInterrupt = Assemble(s2, address + 512, out _);

        if (eventCode.Length > 256 || supervisorException.Length > 256 || supervisorInterrupt.Length > MainOffset - 512)
        {
            throw new InvalidOperationException("a trampoline event entry overflows its slot");
        }

        var code = new byte[MainOffset + main.Length];
        code.AsSpan().Fill(0xCC);
        eventCode.CopyTo(code, 0);
        supervisorException.CopyTo(code, 256);
        supervisorInterrupt.CopyTo(code, 512);
        main.CopyTo(code, MainOffset);
        int Offset(Label label) => (int)(LabelAddress(label) - address);
        return new Image(code, Offset(syscallEntry), 0, Offset(resume), Offset(retu), Offset(park));
    }

    private static byte[] Assemble(Assembler assembler, ulong address, out AssemblerResult result)
    {
        using var stream = new MemoryStream();
        result = assembler.Assemble(new StreamCodeWriter(stream), address, BlockEncoderOptions.ReturnNewInstructionOffsets);
        return stream.ToArray();
    }
}
