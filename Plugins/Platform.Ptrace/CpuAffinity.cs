using AppKernel.Platform.Ptrace.Native;

namespace AppKernel.Platform.Ptrace;

/// <summary>
/// Pins each tracing host thread and the stub threads it traces to one CPU. A ptrace round trip
/// costs several times more when tracer and tracee sit on different CPUs (each stop and resume is
/// a cross-CPU wakeup), so they share one; host threads are spread over the CPUs round-robin.
/// </summary>
internal static unsafe class CpuAffinity
{
    private const int MaskWords = 16; // cpu_set_t: 1024 CPUs

    private static readonly int[] AllowedCpus = ReadAllowedCpus();
    private static int next = -1;

    [ThreadStatic]
    private static int assignedCpuPlusOne;

    /// <summary>Pins the calling thread (on first use) and stub thread <paramref name="threadId"/> to the calling thread's CPU.</summary>
    public static void PinCallerAndStub(int threadId)
    {
        if (AllowedCpus.Length == 0)
        {
            return;
        }

        ulong* mask = stackalloc ulong[MaskWords];
        if (assignedCpuPlusOne == 0)
        {
            int index = Interlocked.Increment(ref next);
            int cpu = AllowedCpus[(int)((uint)index % (uint)AllowedCpus.Length)];
            MaskOf(cpu, mask);
            if (LibC.SchedSetAffinity(0, MaskWords * sizeof(ulong), mask) != 0)
            {
                return; // not allowed to pin (cgroup cpuset changed): run unpinned
            }

            assignedCpuPlusOne = cpu + 1;
        }

        MaskOf(assignedCpuPlusOne - 1, mask);
        LibC.SchedSetAffinity(threadId, MaskWords * sizeof(ulong), mask);
    }

    private static void MaskOf(int cpu, ulong* mask)
    {
        new Span<ulong>(mask, MaskWords).Clear();
        mask[cpu / 64] = 1UL << (cpu % 64);
    }

    private static int[] ReadAllowedCpus()
    {
        // The process's mask (its main thread's), not the caller's, which may already be pinned.
        ulong* mask = stackalloc ulong[MaskWords];
        if (LibC.SchedGetAffinity(LibC.GetPid(), MaskWords * sizeof(ulong), mask) != 0)
        {
            return [];
        }

        var cpus = new List<int>();
        for (int cpu = 0; cpu < MaskWords * 64; cpu++)
        {
            if ((mask[cpu / 64] & (1UL << (cpu % 64))) != 0)
            {
                cpus.Add(cpu);
            }
        }

        return [.. cpus];
    }
}
