using System.Text;
using AppKernel.Platform;
using AppKernel.Sentry.Kernel;
using AppKernel.Sentry.Memory;
using AppKernel.Sentry.Vfs;
using AppKernel.Vfs;

namespace AppKernel.Sentry.Loader;

/// <summary>
/// execve in the Sentry: the host kernel never execs the program. Checks and opens the file
/// (following #! scripts), then builds a fresh address space with the ELF segments, the
/// interpreter (PT_INTERP) and the initial stack.
/// </summary>
internal static class ElfLoader
{
    private const int ScriptHeaderSize = 256;
    private const int MaxScriptDepth = 4;

    /// <summary>Everything that can fail with an errno the caller gets back (ENOENT, EACCES, ENOEXEC, ELOOP...).</summary>
    public static ExecPlan Prepare(KernelTask task, in PathContext context, string path, List<string> argv, IReadOnlyList<string> envp)
    {
        for (int depth = 0; ; depth++)
        {
            var executable = OpenExecutable(task, context, path);
            try
            {
                byte[] header = ReadAt(executable, 0, ScriptHeaderSize);
                if (header.Length >= 2 && header[0] == '#' && header[1] == '!')
                {
                    if (depth >= MaxScriptDepth)
                    {
                        throw ErrnoException.Of(Errno.ELOOP);
                    }

                    var (interpreter, argument) = ParseShebang(header);
                    var scriptArgs = new List<string> { interpreter };
                    if (argument is not null)
                    {
                        scriptArgs.Add(argument);
                    }

                    scriptArgs.Add(path);
                    scriptArgs.AddRange(argv.Skip(1));
                    argv = scriptArgs;
                    path = interpreter;
                    executable.Release();
                    continue;
                }

                var elf = ElfFile.Parse(header, (offset, length) => ReadAt(executable, offset, length));
                FileDescription? interpreterFile = null;
                ElfFile? interpreterElf = null;
                var interp = elf.ProgramHeaders.FirstOrDefault(h => h.Type == ElfFile.PT_INTERP);
                if (interp.Type == ElfFile.PT_INTERP)
                {
                    if (interp.FileSize is 0 or > 4096)
                    {
                        throw ErrnoException.Of(Errno.ENOEXEC);
                    }

                    string interpreterPath = Encoding.UTF8.GetString(ReadAt(executable, (long)interp.Offset, (int)interp.FileSize)).TrimEnd('\0');
                    interpreterFile = OpenExecutable(task, context, interpreterPath, requireExecute: false);
                    try
                    {
                        byte[] interpreterHeader = ReadAt(interpreterFile, 0, ElfFile.HeaderSize);
                        interpreterElf = ElfFile.Parse(interpreterHeader, (offset, length) => ReadAt(interpreterFile, offset, length));
                    }
                    catch (ErrnoException e) when (e.Errno == Errno.ENOEXEC)
                    {
                        interpreterFile.Release();
                        throw ErrnoException.Of(Errno.ELIBBAD);
                    }
                }

                return new ExecPlan
                {
                    Path = path,
                    Arguments = argv,
                    Environment = envp,
                    Executable = executable,
                    Elf = elf,
                    Interpreter = interpreterFile,
                    InterpreterElf = interpreterElf,
                };
            }
            catch
            {
                executable.Release();
                throw;
            }
        }
    }

    private static FileDescription OpenExecutable(KernelTask task, in PathContext context, string path, bool requireExecute = true)
    {
        var resolution = task.Kernel.Vfs.Resolve(context, path, followFinal: true);
        if (resolution.Description is not null)
        {
            throw ErrnoException.Of(Errno.EACCES);
        }

        var target = resolution.Path;
        var attributes = target.Inode.GetAttributes();
        if (!attributes.Mode.IsRegular())
        {
            throw ErrnoException.Of(Errno.EACCES);
        }

        if (requireExecute)
        {
            Permissions.Check(attributes, context.Credentials, Permissions.Execute);
        }

        return task.Kernel.Vfs.OpenResolved(task, Credentials.ForUser(0, 0), target, OpenFlags.ReadOnly, created: false);
    }

    private static (string Interpreter, string? Argument) ParseShebang(byte[] header)
    {
        int end = Array.IndexOf(header, (byte)'\n');
        string line = Encoding.UTF8.GetString(header, 2, (end < 0 ? header.Length : end) - 2).Trim(' ', '\t', '\r');
        if (line.Length == 0)
        {
            throw ErrnoException.Of(Errno.ENOEXEC);
        }

        int split = line.IndexOfAny([' ', '\t']);
        if (split < 0)
        {
            return (line, null);
        }

        string argument = line[(split + 1)..].Trim(' ', '\t');
        return (line[..split], argument.Length == 0 ? null : argument);
    }

    private static byte[] ReadAt(FileDescription file, long offset, int length)
    {
        var buffer = new byte[length];
        int total = 0;
        while (total < length)
        {
            long position = offset + total;
            long n = file.Operations.Read(buffer.AsSpan(total), ref position);
            if (n <= 0)
            {
                break;
            }

            total += (int)n;
        }

        return total == length ? buffer : buffer[..total];
    }

    /// <summary>
    /// The point of no return: a new address space on the calling (task) thread, the segments,
    /// the stack, the registers. Failures from here on kill the process.
    /// </summary>
    public static void Commit(KernelTask task, ExecPlan plan)
    {
        var kernel = task.Kernel;
        var platform = kernel.Platform;
        var oldMm = task.Group.Memory;
        MemoryManager mm;
        task.Group.Timers.ExecCommitted(task, oldMm);
        if (oldMm is { IsExclusive: true } && task.Context is not null && task.Group.TaskCount == 1)
        {
            // The usual exec: the process is alone in its address space, so the platform's address
            // space and this thread's context are kept and only emptied (no new stub or vCPU).
            mm = new MemoryManager(kernel.MemoryFile, oldMm.Detach(), platform.MaxUserAddress);
            task.Group.Memory = mm;
        }
        else
        {
            // vfork's child shares its parent's memory: it gets an address space of its own.
            var addressSpace = platform.CreateAddressSpace(kernel.MemoryFile);
            IExecutionContext context;
            try
            {
                mm = new MemoryManager(kernel.MemoryFile, addressSpace, platform.MaxUserAddress);
                context = platform.CreateExecutionContext(addressSpace);
            }
            catch
            {
                addressSpace.Dispose();
                throw;
            }

            var oldContext = task.Context;
            task.Context = context;
            task.Group.Memory = mm;
            oldContext?.Dispose();
            oldMm?.RemoveUser();
            if (oldContext is not null)
            {
                // The new context must be driven by this thread from now on.
                context.LoadExtendedState(task.Cpu);
            }
        }

        var layout = Layout(kernel, mm);
        mm.StackLimit = task.Group.Limits.Get(ResourceLimits.STACK).Current;
        var main = MapImage(mm, plan.Executable, plan.Elf, kernel, isInterpreter: false, layout.PieBase);
        ulong entry = main.Entry;
        ulong interpreterBase = 0;
        if (plan.Interpreter is { } interpreterFile && plan.InterpreterElf is { } interpreterElf)
        {
            var interpreter = MapImage(mm, interpreterFile, interpreterElf, kernel, isInterpreter: true, 0);
            entry = interpreter.Entry;
            interpreterBase = interpreter.Bias;
        }

        // Linux randomises the heap start by up to 32 MiB.
        ulong brkStart = MemoryManager.PageRoundUp(main.End) + kernel.RandomPages(32UL << 20);

        mm.InitializeBrk(brkStart);
        bool executableStack = plan.Elf.ProgramHeaders.Any(h => h.Type == ElfFile.PT_GNU_STACK && (h.Flags & ElfFile.PF_X) != 0);
        ulong sp = InitialStack.Build(task, mm, layout.StackTop, plan, main, interpreterBase, executableStack);

        ref var r = ref task.Cpu.Registers;
        r = default;
        r.Rip = entry;
        r.Rsp = sp;
        r.Cs = 0x33;
        r.Ss = 0x2b;
        r.Eflags = 0x202;
        ExtendedState.WriteInitial(task.Cpu.ExtendedState);
        task.Cpu.ExtendedStateDirty = true;

        var group = task.Group;
        group.ExecutablePath = VirtualFileSystem.PathString(plan.Executable.Path!.Value, task.Fs.Root);
        string name = Path.GetFileName(plan.Path);
        task.Name = name.Length > 15 ? name[..15] : name;
        group.Handlers = group.Handlers.ForExec();
        task.Fds.CloseOnExecute();
        task.AltStack = new Abi.LinuxStack { Flags = Abi.Signals.SS_DISABLE };
        task.RestartBlock = null;
        group.HasExecuted = true;
        task.ClearChildTid = 0;
        plan.Dispose();

        // A vfork parent may run again: the child no longer uses its memory.
        task.ReleaseVforkParent();
    }

    private readonly record struct AddressLayout(ulong StackTop, ulong PieBase);

    private static AddressLayout Layout(Kernel.Kernel kernel, MemoryManager mm)
    {
        // Linux's x86-64 layout: stack at the top (randomised by up to 16 GiB), mmap area below it
        // with a gap of at least 128 MiB (randomised by up to 1 TiB), PIE at two thirds of the space.
        ulong top = mm.MaxAddress;
        ulong stackTop = top - kernel.RandomPages(16UL << 30);
        ulong gap = Math.Max(mm.StackLimit, 128UL << 20) + (1UL << 20);
        ulong mmapBase = MemoryManager.PageRoundDown(stackTop - gap - kernel.RandomPages(1UL << 40));
        mm.MmapBase = mmapBase;
        ulong pieBase = MemoryManager.PageRoundDown(top / 3 * 2) + kernel.RandomPages(1UL << 40);
        return new AddressLayout(stackTop, pieBase);
    }

    /// <summary>Where an image landed.</summary>
    internal readonly record struct LoadedElf(ulong Bias, ulong Entry, ulong End, ulong ProgramHeaders, int ProgramHeaderCount);

    private static LoadedElf MapImage(MemoryManager mm, FileDescription file, ElfFile elf, Kernel.Kernel kernel, bool isInterpreter, ulong pieBase)
    {
        var loads = elf.ProgramHeaders.Where(h => h.Type == ElfFile.PT_LOAD).ToArray();
        if (loads.Length == 0)
        {
            throw ErrnoException.Of(Errno.ENOEXEC);
        }

        ulong first = MemoryManager.PageRoundDown(loads.Min(h => h.VirtualAddress));
        ulong last = MemoryManager.PageRoundUp(loads.Max(h => h.VirtualAddress + h.MemorySize));
        ulong bias = 0;
        if (elf.Type == ElfFile.ET_DYN)
        {
            ulong hint = isInterpreter ? 0 : pieBase;
            ulong span = last - first;
            ulong reserved = mm.Map(new MmapRequest { Address = hint, Length = span, Access = MemoryAccess.None });
            mm.Unmap(reserved, span);
            bias = reserved - first;
        }

        var mappable = file.Operations.Mappable ?? throw ErrnoException.Of(Errno.ENOEXEC);
        var attributes = file.Operations.Inode?.GetAttributes() ?? default;
        string name = file.Name;
        ulong end = 0;
        foreach (var h in loads)
        {
            if (h.FileSize > h.MemorySize || ((h.VirtualAddress - h.Offset) & MemoryManager.PageMask) != 0)
            {
                throw ErrnoException.Of(Errno.ENOEXEC);
            }

            var access = (h.Flags & ElfFile.PF_R) != 0 ? MemoryAccess.Read : 0;
            access |= (h.Flags & ElfFile.PF_W) != 0 ? MemoryAccess.Write : 0;
            access |= (h.Flags & ElfFile.PF_X) != 0 ? MemoryAccess.Execute : 0;
            ulong start = bias + MemoryManager.PageRoundDown(h.VirtualAddress);
            ulong fileEnd = bias + h.VirtualAddress + h.FileSize;
            ulong memoryEnd = bias + h.VirtualAddress + h.MemorySize;
            ulong mappedFileEnd = MemoryManager.PageRoundUp(fileEnd);
            bool zeroTail = h.MemorySize > h.FileSize && (fileEnd & MemoryManager.PageMask) != 0;
            if (h.FileSize > 0)
            {
                mm.Map(new MmapRequest
                {
                    Address = start,
                    Length = mappedFileEnd - start,
                    Access = zeroTail ? access | MemoryAccess.Write : access,
                    Fixed = true,
                    Mappable = mappable,
                    FileOffset = (long)MemoryManager.PageRoundDown(h.Offset),
                    Owner = file,
                    Name = name,
                    Device = 0,
                    Inode = attributes.Ino,
                });
                if (zeroTail)
                {
                    // The bss starts inside the last file page: the rest of that page is zero, not file bytes.
                    mm.Zero(fileEnd, mappedFileEnd - fileEnd);
                    if ((access & MemoryAccess.Write) == 0)
                    {
                        mm.Protect(start, mappedFileEnd - start, access, growsDown: false);
                    }
                }
            }
            else
            {
                mappedFileEnd = start;
            }

            ulong anonymousEnd = MemoryManager.PageRoundUp(memoryEnd);
            if (anonymousEnd > mappedFileEnd)
            {
                mm.Map(new MmapRequest { Address = mappedFileEnd, Length = anonymousEnd - mappedFileEnd, Access = access, Fixed = true });
            }

            end = Math.Max(end, memoryEnd);
        }

        ulong programHeaders = 0;
        var phdr = elf.ProgramHeaders.FirstOrDefault(h => h.Type == ElfFile.PT_PHDR);
        if (phdr.Type == ElfFile.PT_PHDR)
        {
            programHeaders = bias + phdr.VirtualAddress;
        }
        else
        {
            foreach (var h in loads)
            {
                if (elf.ProgramHeaderOffset >= h.Offset && elf.ProgramHeaderOffset < h.Offset + h.FileSize)
                {
                    programHeaders = bias + h.VirtualAddress + (elf.ProgramHeaderOffset - h.Offset);
                    break;
                }
            }
        }

        return new LoadedElf(bias, bias + elf.Entry, end, programHeaders, elf.ProgramHeaderCount);
    }
}
