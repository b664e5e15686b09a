namespace AppKernel.Syscalls;

/// <summary>
/// What a syscall handler returns: a value for <c>rax</c>, an errno, a restart request, or
/// "no return" (exit, execve, rt_sigreturn: the handler set the registers itself).
/// A plain value type so the hot path allocates nothing.
/// </summary>
public readonly struct SyscallResult : IEquatable<SyscallResult>
{
    private const long NoReturnMarker = long.MinValue;

    private SyscallResult(long raw) => Raw = raw;

    /// <summary>The value the program sees in <c>rax</c>: the result, or <c>-errno</c>.</summary>
    public long Raw { get; }

    /// <summary>True when the call failed (including restart codes).</summary>
    public bool IsError => Raw < 0 && Raw >= -4095;

    /// <summary>The errno of a failed call, or <see cref="Errno.None"/>.</summary>
    public Errno Errno => IsError ? (Errno)(-Raw) : Errno.None;

    /// <summary>True when the handler has set the registers itself and <c>rax</c> must not be touched.</summary>
    public bool IsNoReturn => Raw == NoReturnMarker;

    /// <summary>A successful result.</summary>
    public static SyscallResult Ok(long value) => new(value);

    /// <summary>A successful result for an unsigned value (an address).</summary>
    public static SyscallResult Ok(ulong value) => new((long)value);

    /// <summary>Success with zero.</summary>
    public static SyscallResult Zero => new(0);

    /// <summary>A failure with <paramref name="errno"/>.</summary>
    public static SyscallResult Error(Errno errno) => new(-(long)errno);

    /// <summary>The handler has set the program's registers; leave them as they are.</summary>
    public static SyscallResult NoReturn => new(NoReturnMarker);

    /// <inheritdoc/>
    public bool Equals(SyscallResult other) => Raw == other.Raw;

    /// <inheritdoc/>
    public override bool Equals(object? obj) => obj is SyscallResult other && Equals(other);

    /// <inheritdoc/>
    public override int GetHashCode() => Raw.GetHashCode();

    /// <summary>Equality of the raw values.</summary>
    public static bool operator ==(SyscallResult left, SyscallResult right) => left.Equals(right);

    /// <summary>Inequality of the raw values.</summary>
    public static bool operator !=(SyscallResult left, SyscallResult right) => !left.Equals(right);

    /// <inheritdoc/>
    public override string ToString() => IsNoReturn ? "(no return)" : IsError ? $"-1 {Errno}" : Raw.ToString();
}
