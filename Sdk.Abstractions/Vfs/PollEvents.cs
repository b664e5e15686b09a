namespace AppKernel.Vfs;

/// <summary>poll(2)/epoll readiness bits with Linux's values.</summary>
[Flags]
public enum PollEvents : uint
{
#pragma warning disable CS1591 // Linux's names (poll(2)).
    None = 0,
    In = 0x1,
    Priority = 0x2,
    Out = 0x4,
    Error = 0x8,
    HangUp = 0x10,
    Invalid = 0x20,
    ReadNormal = 0x40,
    ReadBand = 0x80,
    WriteNormal = 0x100,
    WriteBand = 0x200,
    Message = 0x400,
    ReadHangUp = 0x2000,
#pragma warning restore CS1591
    /// <summary>Every readiness bit, for waiters that want to hear of any change.</summary>
    All = 0xFFFF,
}
