using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;
using Native = AppKernel.Platform.Kvm.Native;

namespace AppKernel.Platform.Kvm;

/// <summary>
/// The ring-0 code every vCPU runs between the program and the Sentry, assembled with Iced.
/// </summary>
/// <remarks>
/// <para>Entry: <c>syscall</c> goes to a per-vCPU stub (this vCPU's MSR_LSTAR) that saves the user stack
/// pointer in the vCPU page and moves to the vCPU's stack; exceptions and the kick interrupt arrive
/// through the shared IDT on IST1, which is the same stack. The code finds the vCPU page from the stack
/// pointer (the stack is the page after it), so it needs neither SWAPGS nor an MSR read. It saves the
/// program's registers in the page (in <see cref="Registers"/> layout), records why it stopped, and
/// executes <c>hlt</c>: KVM_RUN returns KVM_EXIT_HLT to the Sentry.</para>
/// <para>The next KVM_RUN continues after the <c>hlt</c>: the code does what the Sentry asked (load
/// another page-table root, rewrite page-table entries in place, flush the TLB), loads the registers
/// from the page and returns to the program with <c>sysretq</c>, or <c>iretq</c> when RCX and R11 must
/// come back exactly (after an exception or interrupt).</para>
/// </remarks>
internal static class Trampoline
{
    /// <summary>The assembled code and its entry points (offsets from the start); <see cref="Vectors"/> gives each IDT vector's stub.</summary>
    public sealed record Image(byte[] Code, int SyscallCommon, int Resume, int[] Vectors);

    /// <summary>Exceptions for which the CPU pushes an error code.</summary>
    private static readonly HashSet<int> WithErrorCode = [8, 10, 11, 12, 13, 14, 17, 21, 29, 30];

    // The vCPU page relative to the stack pointer: at the stack top (syscall path, park, resume) ...
    private static AssemblerMemoryOperand Top(int offset) => __[rsp + (offset - VcpuPage.StackTop)];

    // ... and with an exception frame plus vector and error code on the stack (7 quadwords).
    private const int FrameSize = 56;

    private static AssemblerMemoryOperand Framed(int offset) => __[rsp + (offset - VcpuPage.StackTop + FrameSize)];

    public static Image Build(ulong address)
    {
        var a = new Assembler(64);
        var syscallCommon = a.CreateLabel();
        var exceptionCommon = a.CreateLabel();
        var park = a.CreateLabel();
        var resume = a.CreateLabel();
        var noCr3 = a.CreateLabel();
        var noTouch = a.CreateLabel();
        var touchRun = a.CreateLabel();
        var touchEntry = a.CreateLabel();
        var noFlush = a.CreateLabel();
        var useIret = a.CreateLabel();
        var kernelFault = a.CreateLabel();
        var notPageFault = a.CreateLabel();

        // ---- Syscall (after the per-vCPU stub saved RSP and moved to the vCPU stack top). ----
        // RCX holds the user RIP and R11 the user RFLAGS, as the instruction left them.
        a.Label(ref syscallCommon);
        a.mov(Top(VcpuPage.Rax), rax);
        a.mov(Top(VcpuPage.OrigRax), rax);
        a.mov(Top(VcpuPage.Rcx), rcx);
        a.mov(Top(VcpuPage.Rip), rcx);
        a.mov(Top(VcpuPage.R11), r11);
        a.mov(Top(VcpuPage.Eflags), r11);
        SaveGeneral(a, Top);
        a.mov(__dword_ptr[rsp + (VcpuPage.Exit - VcpuPage.StackTop)], (int)VcpuPage.ExitSyscall);
        a.jmp(park);

        // ---- Exceptions and interrupts: [rsp] vector, error code, rip, cs, rflags, rsp, ss. ----
        a.Label(ref exceptionCommon);
        a.test(__byte_ptr[rsp + 24], 3);
        a.jz(kernelFault);
        a.mov(Framed(VcpuPage.Rax), rax);
        a.mov(Framed(VcpuPage.Rcx), rcx);
        a.mov(Framed(VcpuPage.R11), r11);
        a.mov(__qword_ptr[rsp + (VcpuPage.OrigRax - VcpuPage.StackTop + FrameSize)], -1);
        SaveGeneral(a, Framed);
        a.mov(rax, __qword_ptr[rsp + 16]);
        a.mov(Framed(VcpuPage.Rip), rax);
        a.mov(rax, __qword_ptr[rsp + 32]);
        a.mov(Framed(VcpuPage.Eflags), rax);
        a.mov(rax, __qword_ptr[rsp + 40]);
        a.mov(Framed(VcpuPage.Rsp), rax);
        a.mov(eax, __dword_ptr[rsp]);
        a.mov(__dword_ptr[rsp + (VcpuPage.Exit - VcpuPage.StackTop + FrameSize)], eax);
        a.mov(eax, __dword_ptr[rsp + 8]);
        a.mov(__dword_ptr[rsp + (VcpuPage.ErrorCode - VcpuPage.StackTop + FrameSize)], eax);
        // CR2 only for page faults (reading it may cost a hypervisor exit).
        a.cmp(__dword_ptr[rsp], 14);
        a.jne(notPageFault);
        a.mov(rax, cr2);
        a.mov(Framed(VcpuPage.Cr2), rax);
        a.Label(ref notPageFault);
        a.add(rsp, FrameSize);

        // ---- Park: FS and GS bases, then stop (KVM_EXIT_HLT). The next KVM_RUN continues at resume. ----
        a.Label(ref park);
        // (rdmsr rather than rdfsbase: a hypervisor that emulates ring 0 supports the MSR accesses.)
        a.mov(ecx, unchecked((int)Native.KvmAbi.MsrFsBase));
        a.rdmsr();
        a.mov(__dword_ptr[rsp + (VcpuPage.FsBase - VcpuPage.StackTop)], eax);
        a.mov(__dword_ptr[rsp + (VcpuPage.FsBase + 4 - VcpuPage.StackTop)], edx);
        a.mov(ecx, unchecked((int)Native.KvmAbi.MsrGsBase));
        a.rdmsr();
        a.mov(__dword_ptr[rsp + (VcpuPage.GsBase - VcpuPage.StackTop)], eax);
        a.mov(__dword_ptr[rsp + (VcpuPage.GsBase + 4 - VcpuPage.StackTop)], edx);
        var parkAgain = a.CreateLabel();
        a.Label(ref parkAgain);
        a.mov(__dword_ptr[rsp + (VcpuPage.Phase - VcpuPage.StackTop)], 1);
        a.hlt();
        a.Label(ref resume);
        a.mov(__dword_ptr[rsp + (VcpuPage.Phase - VcpuPage.StackTop)], 0);

        // Load another page-table root (this also flushes the TLB).
        a.cmp(__dword_ptr[rsp + (VcpuPage.LoadCr3 - VcpuPage.StackTop)], 0);
        a.je(noCr3);
        a.mov(rax, Top(VcpuPage.Cr3));
        a.mov(cr3, rax);
        a.mov(__dword_ptr[rsp + (VcpuPage.LoadCr3 - VcpuPage.StackTop)], 0);
        a.mov(__dword_ptr[rsp + (VcpuPage.FlushTlb - VcpuPage.StackTop)], 0);
        a.Label(ref noCr3);

        // Rewrite page-table entries the Sentry changed, in place (an atomic OR of zero changes nothing
        // but is a guest write), so that a hypervisor shadowing guest page tables notices the change.
        a.mov(ecx, __dword_ptr[rsp + (VcpuPage.TouchCount - VcpuPage.StackTop)]);
        a.test(ecx, ecx);
        a.jz(noTouch);
        a.lea(rsi, __[rsp + (VcpuPage.Touches - VcpuPage.StackTop)]);
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
        a.mov(__dword_ptr[rsp + (VcpuPage.TouchCount - VcpuPage.StackTop)], 0);
        a.Label(ref noTouch);

        // Flush the TLB: mappings of this vCPU's address space changed since it last ran.
        a.cmp(__dword_ptr[rsp + (VcpuPage.FlushTlb - VcpuPage.StackTop)], 0);
        a.je(noFlush);
        a.mov(rax, cr3);
        a.mov(cr3, rax);
        a.mov(__dword_ptr[rsp + (VcpuPage.FlushTlb - VcpuPage.StackTop)], 0);
        a.Label(ref noFlush);

        // Work only: stop again.
        a.cmp(__dword_ptr[rsp + (VcpuPage.Command - VcpuPage.StackTop)], 0);
        a.jne(parkAgain);

        // ---- Return to the program. ----
        a.mov(ecx, unchecked((int)Native.KvmAbi.MsrFsBase));
        a.mov(eax, __dword_ptr[rsp + (VcpuPage.FsBase - VcpuPage.StackTop)]);
        a.mov(edx, __dword_ptr[rsp + (VcpuPage.FsBase + 4 - VcpuPage.StackTop)]);
        a.wrmsr();
        a.mov(ecx, unchecked((int)Native.KvmAbi.MsrGsBase));
        a.mov(eax, __dword_ptr[rsp + (VcpuPage.GsBase - VcpuPage.StackTop)]);
        a.mov(edx, __dword_ptr[rsp + (VcpuPage.GsBase + 4 - VcpuPage.StackTop)]);
        a.wrmsr();
        a.cmp(__dword_ptr[rsp + (VcpuPage.UseIret - VcpuPage.StackTop)], 0);
        a.jne(useIret);

        // sysretq: RIP from RCX, RFLAGS from R11; the stack pointer is loaded last.
        RestoreGeneral(a);
        a.mov(rcx, Top(VcpuPage.Rip));
        a.mov(r11, Top(VcpuPage.Eflags));
        a.mov(rax, Top(VcpuPage.Rax));
        a.mov(rsp, Top(VcpuPage.Rsp));
        a.sysretq();

        // iretq: a frame below the stack top, every register exact.
        a.Label(ref useIret);
        a.mov(rax, Top(VcpuPage.Rip));
        a.mov(__qword_ptr[rsp - 40], rax);
        a.mov(__qword_ptr[rsp - 32], 0x33);
        a.mov(rax, Top(VcpuPage.Eflags));
        a.mov(__qword_ptr[rsp - 24], rax);
        a.mov(rax, Top(VcpuPage.Rsp));
        a.mov(__qword_ptr[rsp - 16], rax);
        a.mov(__qword_ptr[rsp - 8], 0x2b);
        RestoreGeneral(a);
        a.mov(rcx, Top(VcpuPage.Rcx));
        a.mov(r11, Top(VcpuPage.R11));
        a.mov(rax, Top(VcpuPage.Rax));
        a.sub(rsp, 40);
        a.iretq();

        // ---- A fault in ring 0 (a trampoline bug): record it and stop for good. ----
        a.Label(ref kernelFault);
        a.mov(eax, __dword_ptr[rsp]);
        a.mov(Framed(VcpuPage.KernelFaultVector), rax);
        a.mov(rax, __qword_ptr[rsp + 16]);
        a.mov(Framed(VcpuPage.KernelFaultRip), rax);
        a.mov(rax, cr2);
        a.mov(Framed(VcpuPage.Cr2), rax);
        a.add(rsp, FrameSize);
        a.mov(__dword_ptr[rsp + (VcpuPage.Exit - VcpuPage.StackTop)], (int)VcpuPage.ExitKernelFault);
        var stop = a.CreateLabel();
        a.Label(ref stop);
        a.mov(__dword_ptr[rsp + (VcpuPage.Phase - VcpuPage.StackTop)], 1);
        a.hlt();
        a.jmp(stop);

        // ---- One stub per IDT vector: the error code (0 where the CPU pushes none), the vector. ----
        var stubs = new Label[256];
        foreach (int vector in HandledVectors)
        {
            stubs[vector] = a.CreateLabel();
            a.Label(ref stubs[vector]);
            if (!WithErrorCode.Contains(vector))
            {
                a.push(0);
            }

            a.push(vector);
            a.jmp(exceptionCommon);
        }

        using var stream = new MemoryStream();
        var result = a.Assemble(new StreamCodeWriter(stream), address, BlockEncoderOptions.ReturnNewInstructionOffsets);
        int Offset(Label label) => (int)(result.GetLabelRIP(label) - address);
        var vectors = new int[256];
        Array.Fill(vectors, -1);
        foreach (int vector in HandledVectors)
        {
            vectors[vector] = Offset(stubs[vector]);
        }

        return new Image(stream.ToArray(), Offset(syscallCommon), Offset(resume), vectors);
    }

    /// <summary>The vectors with an IDT gate: the 32 exceptions and the kick interrupt.</summary>
    public static IEnumerable<int> HandledVectors => Enumerable.Range(0, 32).Append((int)VcpuPage.KickVector);

    /// <summary>
    /// The per-vCPU syscall entry at <paramref name="address"/> (this vCPU's MSR_LSTAR): keep the user
    /// stack pointer in the vCPU page, switch to the vCPU stack, continue in the shared code.
    /// </summary>
    public static byte[] BuildSyscallStub(ulong address, ulong pageAddress, ulong syscallCommon)
    {
        var a = new Assembler(64);
        a.AddInstruction(Instruction.Create(Code.Mov_rm64_r64, new MemoryOperand(Register.RIP, (long)(pageAddress + VcpuPage.Rsp)), Register.RSP));
        a.AddInstruction(Instruction.Create(Code.Lea_r64_m, Register.RSP, new MemoryOperand(Register.RIP, (long)(pageAddress + VcpuPage.StackTop))));
        a.jmp(syscallCommon);
        using var stream = new MemoryStream();
        a.Assemble(new StreamCodeWriter(stream), address);
        return stream.ToArray();
    }

    private static void SaveGeneral(Assembler a, Func<int, AssemblerMemoryOperand> slot)
    {
        a.mov(slot(VcpuPage.Rbx), rbx);
        a.mov(slot(VcpuPage.Rdx), rdx);
        a.mov(slot(VcpuPage.Rsi), rsi);
        a.mov(slot(VcpuPage.Rdi), rdi);
        a.mov(slot(VcpuPage.Rbp), rbp);
        a.mov(slot(VcpuPage.R8), r8);
        a.mov(slot(VcpuPage.R9), r9);
        a.mov(slot(VcpuPage.R10), r10);
        a.mov(slot(VcpuPage.R12), r12);
        a.mov(slot(VcpuPage.R13), r13);
        a.mov(slot(VcpuPage.R14), r14);
        a.mov(slot(VcpuPage.R15), r15);
    }

    private static void RestoreGeneral(Assembler a)
    {
        a.mov(rbx, Top(VcpuPage.Rbx));
        a.mov(rdx, Top(VcpuPage.Rdx));
        a.mov(rsi, Top(VcpuPage.Rsi));
        a.mov(rdi, Top(VcpuPage.Rdi));
        a.mov(rbp, Top(VcpuPage.Rbp));
        a.mov(r8, Top(VcpuPage.R8));
        a.mov(r9, Top(VcpuPage.R9));
        a.mov(r10, Top(VcpuPage.R10));
        a.mov(r12, Top(VcpuPage.R12));
        a.mov(r13, Top(VcpuPage.R13));
        a.mov(r14, Top(VcpuPage.R14));
        a.mov(r15, Top(VcpuPage.R15));
    }
}
