namespace AppKernel.Syscalls;

/// <summary>The sandbox's syscall table: number → implementation.</summary>
public interface ISyscallTable
{
    /// <summary>Finds the entry for <paramref name="number"/>; false when the number is unknown (ENOSYS).</summary>
    bool TryGetEntry(int number, out SyscallEntry entry);

    /// <summary>Every entry, by number.</summary>
    IReadOnlyList<SyscallEntry> Entries { get; }
}
