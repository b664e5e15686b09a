namespace AppKernel.Platform.Ptrace.Stub;

/// <summary>
/// Where the stub lives in every stub process, and the fixed offsets inside its code page.
/// </summary>
/// <remarks>
/// At exec the kernel puts the stub's initial stack at a random place in the top 16 GiB below
/// <see cref="TaskTop"/> (0x7ffc00000000 at the lowest, plus a few pages of arguments and the
/// 128 KiB the stack is grown by). The stub's page sits 4 GiB below that range, so the stub's
/// own ELF segment can never collide with its exec stack. Everything from <see cref="Base"/> up is
/// reserved: after attaching, the platform unmaps every host mapping but the stub's page.
/// </remarks>
internal static class StubLayout
{
    /// <summary>The top of the x86-64 user address space with 4-level paging (TASK_SIZE).</summary>
    public const ulong TaskTop = 0x7fff_ffff_f000;

    /// <summary>The stub's code page, and the lowest address the platform reserves.</summary>
    public const ulong Base = 0x7ffb_0000_0000;

    /// <summary>The size of the stub's segment.</summary>
    public const ulong Size = 0x1000;

    /// <summary>The <c>syscall</c> instruction every injected host syscall runs from.</summary>
    public const ulong Gadget = Base;

    /// <summary>The address after the gadget's <c>syscall</c>: what seccomp sees as the instruction pointer.</summary>
    public const ulong GadgetReturn = Gadget + 2;

    /// <summary>The address after the <c>int3</c> that follows the gadget (rip at the trap that ends an injection).</summary>
    public const ulong GadgetTrap = Gadget + 3;

    /// <summary>The park loop (<c>pause()</c> in a loop), where untraced stub threads sleep until seized.</summary>
    public const ulong Park = Gadget + 3;

    /// <summary>The address after the park loop's <c>syscall</c>, where seccomp allows pause() alone.</summary>
    public const ulong ParkReturn = Park + 7;

    /// <summary>The length of the park loop in bytes (mov eax, imm32; syscall; jmp short).</summary>
    public const ulong ParkLength = 9;

    /// <summary>The file descriptor the memory file has in the stub (the only one it holds).</summary>
    public const int MemoryFileDescriptor = 0;
}
