using System.Buffers.Binary;
using System.Runtime.Intrinsics.X86;
using System.Text;
using AppKernel.Platform;
using AppKernel.Sentry.Kernel;
using AppKernel.Sentry.Memory;

namespace AppKernel.Sentry.Loader;

/// <summary>
/// The stack a new image starts with, as Linux's create_elf_tables lays it out: strings at the
/// top (argv, envp, AT_EXECFN, platform, AT_RANDOM bytes), then auxv, envp, argv and argc, with
/// rsp 16-byte aligned on argc.
/// </summary>
internal static class InitialStack
{
    private const ulong AT_NULL = 0, AT_PHDR = 3, AT_PHENT = 4, AT_PHNUM = 5, AT_PAGESZ = 6, AT_BASE = 7, AT_FLAGS = 8,
        AT_ENTRY = 9, AT_UID = 11, AT_EUID = 12, AT_GID = 13, AT_EGID = 14, AT_PLATFORM = 15, AT_HWCAP = 16,
        AT_CLKTCK = 17, AT_SECURE = 23, AT_RANDOM = 25, AT_HWCAP2 = 26, AT_EXECFN = 31, AT_MINSIGSTKSZ = 51;

    private const ulong InitialStackSize = 128 * 1024;

    public static ulong Build(KernelTask task, MemoryManager mm, ulong stackTop, ExecPlan plan, ElfLoader.LoadedElf main, ulong interpreterBase, bool executable)
    {
        byte[] Bytes(string s) => Encoding.UTF8.GetBytes(s + "\0");

        // Strings, from the top down: the filename, then envp, then argv (so argv is lowest).
        byte[] execFn = Bytes(plan.Path);
        var argBytes = plan.Arguments.Select(Bytes).ToArray();
        var envBytes = plan.Environment.Select(Bytes).ToArray();
        long stringsSize = execFn.Length + argBytes.Sum(b => (long)b.Length) + envBytes.Sum(b => (long)b.Length);
        if (stringsSize > 32L * 4096 * 32)
        {
            throw ErrnoException.Of(Errno.E2BIG);
        }

        ulong needed = (ulong)stringsSize + (ulong)(plan.Arguments.Count + plan.Environment.Count + 64) * 8 + 4096;
        ulong size = MemoryManager.PageRoundUp(Math.Max(InitialStackSize, needed + InitialStackSize / 2));
        var access = executable ? MemoryAccess.All : MemoryAccess.ReadWrite;
        mm.Map(new MmapRequest
        {
            Address = stackTop - size,
            Length = size,
            Access = access,
            Fixed = true,
            GrowsDown = true,
            Name = "[stack]",
        });

        ulong p = stackTop - 8; // Linux keeps the top word empty
        ulong Push(byte[] data)
        {
            p -= (ulong)data.Length;
            mm.Write(p, data);
            return p;
        }

        ulong execFnAddress = Push(execFn);
        var envAddresses = new ulong[envBytes.Length];
        for (int i = envBytes.Length - 1; i >= 0; i--)
        {
            envAddresses[i] = Push(envBytes[i]);
        }

        mm.EnvStart = envAddresses.Length > 0 ? envAddresses[0] : p;
        mm.EnvEnd = execFnAddress;
        var argAddresses = new ulong[argBytes.Length];
        for (int i = argBytes.Length - 1; i >= 0; i--)
        {
            argAddresses[i] = Push(argBytes[i]);
        }

        mm.ArgStart = argAddresses.Length > 0 ? argAddresses[0] : p;
        mm.ArgEnd = mm.EnvStart;

        p &= ~15UL;
        ulong platform = Push("x86_64\0"u8.ToArray());
        var random = new byte[16];
        task.Kernel.RandomBytes(random);
        p &= ~15UL;
        ulong randomAddress = Push(random);

        var creds = task.Credentials;
        var auxv = new List<ulong>
        {
            AT_PHDR, main.ProgramHeaders,
            AT_PHENT, ElfFile.ProgramHeaderSize,
            AT_PHNUM, (ulong)main.ProgramHeaderCount,
            AT_PAGESZ, MemoryManager.PageSize,
            AT_BASE, interpreterBase,
            AT_FLAGS, 0,
            AT_ENTRY, main.Entry,
            AT_UID, (ulong)creds.RealUid,
            AT_EUID, (ulong)creds.EffectiveUid,
            AT_GID, (ulong)creds.RealGid,
            AT_EGID, (ulong)creds.EffectiveGid,
            AT_SECURE, 0,
            AT_RANDOM, randomAddress,
            AT_HWCAP, X86Base.IsSupported ? (ulong)(uint)X86Base.CpuId(1, 0).Edx : 0,
            AT_HWCAP2, 2, // HWCAP2_FSGSBASE: the FS/GS base instructions are enabled
            AT_CLKTCK, 100,
            AT_PLATFORM, platform,
            AT_EXECFN, execFnAddress,
            AT_MINSIGSTKSZ, (ulong)(ExtendedState.Size + 8 + 304 + 128 + 128 + 64),
            AT_NULL, 0,
        };
        mm.Auxv = [.. auxv];

        // argc, argv[], NULL, envp[], NULL, auxv[]: rsp must end 16-byte aligned on argc.
        int words = 1 + argAddresses.Length + 1 + envAddresses.Length + 1 + auxv.Count;
        p = (p - (ulong)words * 8) & ~15UL;
        var table = new byte[words * 8];
        int at = 0;
        void Word(ulong value)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(table.AsSpan(at), value);
            at += 8;
        }

        Word((ulong)argAddresses.Length);
        foreach (var a in argAddresses)
        {
            Word(a);
        }

        Word(0);
        foreach (var e in envAddresses)
        {
            Word(e);
        }

        Word(0);
        foreach (var v in auxv)
        {
            Word(v);
        }

        mm.Write(p, table);
        return p;
    }
}
