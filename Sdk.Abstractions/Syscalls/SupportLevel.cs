namespace AppKernel.Syscalls;

/// <summary>How completely a syscall is implemented; the compatibility page is generated from it.</summary>
public enum SupportLevel
{
    /// <summary>Linux semantics, including its errors.</summary>
    Full,
    /// <summary>Works for common uses; the note says what is missing.</summary>
    Partial,
    /// <summary>Deliberately returns an error (e.g. EPERM for privileged calls); the note says which.</summary>
    Error,
    /// <summary>Not implemented: returns ENOSYS and is never passed to the host.</summary>
    Unimplemented,
}
