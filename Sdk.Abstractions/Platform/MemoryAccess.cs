namespace AppKernel.Platform;

/// <summary>Access rights of a mapping, or the kind of access that faulted.</summary>
[Flags]
public enum MemoryAccess
{
    /// <summary>No access (PROT_NONE).</summary>
    None = 0,
    /// <summary>Readable (PROT_READ).</summary>
    Read = 1,
    /// <summary>Writable (PROT_WRITE).</summary>
    Write = 2,
    /// <summary>Executable (PROT_EXEC).</summary>
    Execute = 4,
    /// <summary>Read and write.</summary>
    ReadWrite = Read | Write,
    /// <summary>Read and execute.</summary>
    ReadExecute = Read | Execute,
    /// <summary>Every access.</summary>
    All = Read | Write | Execute,
}
