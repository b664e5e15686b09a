namespace AppKernel.Vfs;

/// <summary>renameat2(2) flags.</summary>
[Flags]
public enum RenameFlags : uint
{
    /// <summary>Plain rename: replace the target.</summary>
    None = 0,
    /// <summary>Fail with EEXIST if the target exists.</summary>
    NoReplace = 1,
    /// <summary>Atomically exchange source and target.</summary>
    Exchange = 2,
    /// <summary>Leave a whiteout in place of the source (overlay).</summary>
    Whiteout = 4,
}
