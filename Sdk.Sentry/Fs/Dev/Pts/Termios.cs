using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace AppKernel.Sentry.Fs.Dev.Pts;

/// <summary>The kernel's struct termios (36 bytes: four flag words, the line discipline, 19 control characters), as TCGETS/TCSETS carry it.</summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
internal struct Termios
{
    public const int Size = 36;

    // c_iflag
    public const uint INLCR = 0x40, IGNCR = 0x80, ICRNL = 0x100, IXON = 0x400, IUTF8 = 0x4000;

    // c_oflag
    public const uint OPOST = 0x1, ONLCR = 0x4, OCRNL = 0x8;

    // c_lflag
    public const uint ISIG = 0x1, ICANON = 0x2, ECHO = 0x8, ECHOE = 0x10, ECHOK = 0x20, ECHONL = 0x40, NOFLSH = 0x80,
        TOSTOP = 0x100, ECHOCTL = 0x200, ECHOKE = 0x800, IEXTEN = 0x8000;

    // c_cc indices
    public const int VINTR = 0, VQUIT = 1, VERASE = 2, VKILL = 3, VEOF = 4, VTIME = 5, VMIN = 6, VSTART = 8, VSTOP = 9,
        VSUSP = 10, VEOL = 11, VWERASE = 14, VLNEXT = 15, VEOL2 = 16;

    public uint InputFlags;
    public uint OutputFlags;
    public uint ControlFlags;
    public uint LocalFlags;
    public byte Line;
    public ControlCharacters ControlChars;

    /// <summary>What a new pseudo-terminal starts with (Linux's tty_std_termios with the pty driver's B38400|CS8|CREAD).</summary>
    public static Termios Default
    {
        get
        {
            var t = new Termios
            {
                InputFlags = ICRNL | IXON,
                OutputFlags = OPOST | ONLCR,
                ControlFlags = 0xF | 0x30 | 0x80, // B38400 | CS8 | CREAD
                LocalFlags = ISIG | ICANON | ECHO | ECHOE | ECHOK | ECHOCTL | ECHOKE | IEXTEN,
            };
            ReadOnlySpan<byte> cc = [3, 28, 127, 21, 4, 0, 1, 0, 17, 19, 26, 0, 18, 15, 23, 22, 0];
            for (int i = 0; i < cc.Length; i++)
            {
                t.ControlChars[i] = cc[i];
            }

            return t;
        }
    }

    public readonly bool Has(uint localFlag) => (LocalFlags & localFlag) != 0;

    /// <summary>Control character <paramref name="index"/>, or -1 when disabled (_POSIX_VDISABLE, 0).</summary>
    public readonly int Char(int index)
    {
        byte c = ControlChars[index];
        return c == 0 ? -1 : c;
    }
}

/// <summary>struct winsize.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct WindowSize
{
    public ushort Rows;
    public ushort Columns;
    public ushort XPixels;
    public ushort YPixels;
}

/// <summary>c_cc: NCCS (19) control characters.</summary>
[InlineArray(19)]
internal struct ControlCharacters
{
    private byte first;
}
