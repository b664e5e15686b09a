namespace AppKernel.Syscalls;

/// <summary>The six raw argument registers of a syscall (rdi, rsi, rdx, r10, r8, r9).</summary>
public struct SyscallArguments
{
#pragma warning disable CS1591
    public ulong A0, A1, A2, A3, A4, A5;
#pragma warning restore CS1591

    /// <summary>Gets or sets argument <paramref name="index"/> (0 to 5).</summary>
    public ulong this[int index]
    {
        readonly get => index switch
        {
            0 => A0, 1 => A1, 2 => A2, 3 => A3, 4 => A4, 5 => A5,
            _ => throw new ArgumentOutOfRangeException(nameof(index)),
        };
        set
        {
            switch (index)
            {
                case 0: A0 = value; break;
                case 1: A1 = value; break;
                case 2: A2 = value; break;
                case 3: A3 = value; break;
                case 4: A4 = value; break;
                case 5: A5 = value; break;
                default: throw new ArgumentOutOfRangeException(nameof(index));
            }
        }
    }
}
