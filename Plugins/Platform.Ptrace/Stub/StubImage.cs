using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace AppKernel.Platform.Ptrace.Stub;

/// <summary>
/// The stub program: machine code assembled here with Iced and packaged as a tiny static ELF.
/// At start it ties its life to the Sentry, closes every inherited fd but the memory file,
/// installs the seccomp filter and spins in its park loop until the platform seizes it.
/// </summary>
internal static class StubImage
{
    private const int SysExitGroup = 231, SysGetPpid = 110, SysPrctl = 157, SysSetrlimit = 160, SysSeccomp = 317, SysCloseRange = 436;
    private const int RlimitCore = 4;
    private const int PrSetPdeathsig = 1, PrSetName = 15, PrSetNoNewPrivs = 38, SeccompSetModeFilter = 1;

    /// <summary>The exit status the stub ends with when a setup step fails (base + step).</summary>
    public const int SetupFailureBase = 100;

    /// <summary>The setup steps, in order, for naming a failed one.</summary>
    public static readonly string[] SetupSteps =
    [
        "prctl(PR_SET_PDEATHSIG)",
        "the parent check (the Sentry's control thread ended before the stub started)",
        "close_range (closing inherited file descriptors)",
        "setrlimit(RLIMIT_CORE)",
        "prctl(PR_SET_NO_NEW_PRIVS)",
        "seccomp(SECCOMP_SET_MODE_FILTER) (seccomp filters unavailable?)",
    ];

    /// <summary>Builds the ELF file of the stub for a Sentry whose process id is <paramref name="parentPid"/>.</summary>
    public static byte[] Build(int parentPid)
    {
        byte[] filter = SeccompFilter.Build(StubLayout.GadgetReturn, StubLayout.ParkReturn);
        var a = new Assembler(64);
        var park = a.CreateLabel("park");
        var entry = a.CreateLabel("entry");
        var filterLabel = a.CreateLabel("filter");
        var die = a.CreateLabel("die");
        var nameLabel = a.CreateLabel("name");
        var failures = new Label[SetupSteps.Length];
        for (int i = 0; i < failures.Length; i++)
        {
            failures[i] = a.CreateLabel($"fail{i}");
        }

        // The gadget (fixed at the start of the page): every injected host syscall runs this
        // syscall, and the int3 after it hands the thread back to its tracer.
        a.syscall();
        a.int3();

        // The park loop: threads no one traces sleep here in pause() (the one syscall seccomp allows
        // from this site) until a tracer seizes and interrupts them.
        a.Label(ref park);
        a.mov(eax, SeccompFilter.SysPause);
        a.syscall();
        a.jmp(park);

        // Name the process for ps and top (exec of a memfd would name it after the fd number);
        // a failure here does not matter.
        a.Label(ref entry);
        a.mov(eax, SysPrctl);
        a.mov(edi, PrSetName);
        a.lea(rsi, __[nameLabel]);
        a.syscall();

        // Setup, step 0: die with the control thread that spawned us: prctl(PR_SET_PDEATHSIG, SIGKILL).
        a.mov(eax, SysPrctl);
        a.mov(edi, PrSetPdeathsig);
        a.mov(esi, 9);
        a.syscall();
        a.test(rax, rax);
        a.jnz(failures[0]);

        // Step 1: if the Sentry was already gone before that, we were reparented: leave.
        a.mov(eax, SysGetPpid);
        a.syscall();
        a.cmp(eax, parentPid);
        a.jne(failures[1]);

        // Step 2: hold no host fd but the memory file at fd 0: close_range(1, ~0U, 0).
        a.mov(eax, SysCloseRange);
        a.mov(edi, 1);
        a.mov(esi, -1);
        a.xor(edx, edx);
        a.syscall();
        a.test(rax, rax);
        a.jnz(failures[2]);

        // Step 3: no core dumps (a seccomp kill is SIGSYS, a core-dumping signal, and the stub's
        // working directory is the Sentry's): setrlimit(RLIMIT_CORE, {0, 0}) from the exec stack.
        a.push(0);
        a.push(0);
        a.mov(eax, SysSetrlimit);
        a.mov(edi, RlimitCore);
        a.mov(rsi, rsp);
        a.syscall();
        a.test(rax, rax);
        a.jnz(failures[3]);

        // Step 4: prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), required for an unprivileged filter.
        a.mov(eax, SysPrctl);
        a.mov(edi, PrSetNoNewPrivs);
        a.mov(esi, 1);
        a.xor(edx, edx);
        a.xor(r10d, r10d);
        a.xor(r8d, r8d);
        a.syscall();
        a.test(rax, rax);
        a.jnz(failures[4]);

        // Step 5: seccomp(SECCOMP_SET_MODE_FILTER, 0, &fprog), with the struct sock_fprog
        // { len, filter } built on the exec stack (the code page is not writable).
        a.lea(rax, __[filterLabel]);
        a.push(rax);
        a.push(filter.Length / 8);
        a.mov(eax, SysSeccomp);
        a.mov(edi, SeccompSetModeFilter);
        a.xor(esi, esi);
        a.mov(rdx, rsp);
        a.syscall();
        a.test(rax, rax);
        a.jnz(failures[5]);

        // Done: wait to be seized.
        a.jmp(park);

        // A failed step exits with status SetupFailureBase + step (no filter yet, so exit_group works).
        for (int i = 0; i < failures.Length; i++)
        {
            a.Label(ref failures[i]);
            a.mov(edi, SetupFailureBase + i);
            a.jmp(die);
        }

        a.Label(ref die);
        a.mov(eax, SysExitGroup);
        a.syscall();
        a.ud2();

        // The seccomp filter (read by the kernel from this page), and the process name.
        a.Label(ref filterLabel);
        a.db(filter);
        a.Label(ref nameLabel);
        a.db("appkernel-stub\0"u8);

        using var code = new MemoryStream();
        var result = a.Assemble(new StreamCodeWriter(code), StubLayout.Base, BlockEncoderOptions.ReturnNewInstructionOffsets);
        if (result.GetLabelRIP(park) != StubLayout.Park || result.GetLabelRIP(entry) != StubLayout.Park + StubLayout.ParkLength ||
            code.Length > (long)StubLayout.Size)
        {
            throw new InvalidOperationException("the stub's code does not fit its fixed layout");
        }

        return ElfImage.Build(code.ToArray(), StubLayout.Base, result.GetLabelRIP(entry));
    }
}
