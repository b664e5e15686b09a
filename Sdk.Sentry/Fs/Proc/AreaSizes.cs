using AppKernel.Platform;
using AppKernel.Sentry.Kernel;

namespace AppKernel.Sentry.Fs.Proc;

/// <summary>
/// An address space's mapped sizes by use, as /proc/PID/status and statm report them: data is
/// private writable memory that is not stack (Linux's data_vm), stack the areas that grow down,
/// exe the executable's own code and lib every other executable, non-writable area.
/// </summary>
internal readonly record struct AreaSizes(ulong Total, ulong Data, ulong Stack, ulong Exe, ulong Lib)
{
    public static AreaSizes Of(ThreadGroup group)
    {
        ulong total = 0, data = 0, stack = 0, exe = 0, lib = 0;
        foreach (var (start, end, vma) in group.Memory?.SnapshotVmas() ?? [])
        {
            ulong length = end - start;
            total += length;
            bool writable = (vma.Access & MemoryAccess.Write) != 0;
            if (vma.GrowsDown)
            {
                stack += length;
            }
            else if (writable && !vma.Shared)
            {
                data += length;
            }
            else if ((vma.Access & MemoryAccess.Execute) != 0 && !writable)
            {
                if (vma.Mappable is not null && vma.Name == group.ExecutablePath)
                {
                    exe += length;
                }
                else
                {
                    lib += length;
                }
            }
        }

        return new AreaSizes(total, data, stack, exe, lib);
    }
}
