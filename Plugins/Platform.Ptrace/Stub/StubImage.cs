using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace AppKernel.Platform.Ptrace.Stub;

/// <summary>
/// The stub program: machine code assembled here with Iced and packaged as a tiny static ELF.
/// At start it ties its life to the Sentry, installs the seccomp filter, closes every inherited
/// fd but the memory file (which tells the launcher, through a pipe, that setup is done) and
/// sleeps in its park loop until the platform seizes it.
/// </summary>
internal static class StubImage
{
    private const int SysGetPpid = 110, SysPrctl = 157, SysSetrlimit = 160, SysSeccomp = 317;
    private const int PrSetPdeathsig = 1, PrSetName = 15, PrSetNoNewPrivs = 38, SeccompSetModeFilter = 1;
    private const int RlimitCore = 4;

    /// <summary>The exit status the stub ends with when a setup step fails (base + step).</summary>
    public const int SetupFailureBase = 100;

    /// <summary>The setup steps, in order, for naming a failed one.</summary>
    public static readonly string[] SetupSteps =
    [
        "prctl(PR_SET_PDEATHSIG)",
        "the parent check (the Sentry's control thread ended before the stub started)",
        "setrlimit(RLIMIT_CORE)",
        "prctl(PR_SET_NO_NEW_PRIVS)",
        "seccomp(SECCOMP_SET_MODE_FILTER) (seccomp filters unavailable?)",
        "close_range (closing inherited file descriptors)",
    ];

    /// <summary>Builds the stub for a Sentry whose process id is <paramref name="parentPid"/>.</summary>
    public static StubProgram Build(int parentPid)
    {
        // The filter needs the addresses of the setup's last syscalls, and sits after all code:
        // assemble once with a placeholder filter of the same length, then with the real one.
        var sites = Assemble(parentPid, SeccompFilter.Build(default)).Sites;
        var program = Assemble(parentPid, SeccompFilter.Build(sites));
        if (program.Sites != sites)
        {
            throw new InvalidOperationException("the stub's layout changed between assembly passes");
        }

        return program;
    }

    private static StubProgram Assemble(int parentPid, byte[] filter)
    {
        var a = new Assembler(64);
        var park = a.CreateLabel("park");
        var entry = a.CreateLabel("entry");
        var filterLabel = a.CreateLabel("filter");
        var nameLabel = a.CreateLabel("name");
        var closeReturn = a.CreateLabel("closeReturn");
        var die = a.CreateLabel("die");
        var dieReturn = a.CreateLabel("dieReturn");
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

        // Step 0: die with the control thread that spawned us: prctl(PR_SET_PDEATHSIG, SIGKILL).
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

        // Step 2: no core dumps (a seccomp kill is SIGSYS, a core-dumping signal, and a core file
        // would land somewhere on the host): setrlimit(RLIMIT_CORE, {0, 0}) from the exec stack.
        a.push(0);
        a.push(0);
        a.mov(eax, SysSetrlimit);
        a.mov(edi, RlimitCore);
        a.mov(rsi, rsp);
        a.syscall();
        a.test(rax, rax);
        a.jnz(failures[2]);

        // Step 3: prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), required for an unprivileged filter.
        a.mov(eax, SysPrctl);
        a.mov(edi, PrSetNoNewPrivs);
        a.mov(esi, 1);
        a.xor(edx, edx);
        a.xor(r10d, r10d);
        a.xor(r8d, r8d);
        a.syscall();
        a.test(rax, rax);
        a.jnz(failures[3]);

        // Step 4: seccomp(SECCOMP_SET_MODE_FILTER, 0, &fprog), with the struct sock_fprog
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
        a.jnz(failures[4]);

        // Step 5, last: hold no host fd but the memory file at fd 0: close_range(1, ~0U, 0), which
        // the filter allows from here alone. Closing fd 1, the launcher's pipe, tells it we are done.
        a.mov(eax, SeccompFilter.SysCloseRange);
        a.mov(edi, 1);
        a.mov(esi, -1);
        a.xor(edx, edx);
        a.syscall();
        a.Label(ref closeReturn);
        a.test(rax, rax);
        a.jnz(failures[5]);
        a.jmp(park);

        // A failed step exits with status SetupFailureBase + step (the filter allows exit_group from here).
        for (int i = 0; i < failures.Length; i++)
        {
            a.Label(ref failures[i]);
            a.mov(edi, SetupFailureBase + i);
            a.jmp(die);
        }

        a.Label(ref die);
        a.mov(eax, SeccompFilter.SysExitGroup);
        a.syscall();
        a.Label(ref dieReturn);
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

        var sites = new StubSites(
            StubLayout.GadgetReturn,
            StubLayout.ParkReturn,
            result.GetLabelRIP(closeReturn),
            result.GetLabelRIP(failures[0]), // the setup's tail ends where the failure exits begin
            result.GetLabelRIP(dieReturn));
        return new StubProgram(ElfImage.Build(code.ToArray(), StubLayout.Base, result.GetLabelRIP(entry)), sites);
    }
}

/// <summary>The addresses after the stub's syscall instructions (what seccomp sees), and the end of the setup.</summary>
/// <param name="GadgetReturn">After the injection gadget's syscall.</param>
/// <param name="ParkReturn">After the park loop's pause().</param>
/// <param name="CloseReturn">After the setup's last syscall, close_range; from here to <paramref name="SetupTailEnd"/> the stub only checks the result and jumps to the park loop.</param>
/// <param name="SetupTailEnd">The end of the setup's tail.</param>
/// <param name="ExitReturn">After the setup-failure exit_group.</param>
internal readonly record struct StubSites(ulong GadgetReturn, ulong ParkReturn, ulong CloseReturn, ulong SetupTailEnd, ulong ExitReturn);

/// <summary>The stub's ELF file and where its syscall sites are.</summary>
internal sealed record StubProgram(byte[] Elf, StubSites Sites);
