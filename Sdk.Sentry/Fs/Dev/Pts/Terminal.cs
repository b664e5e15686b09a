using AppKernel.Sentry.Abi;
using AppKernel.Sentry.Kernel;
using AppKernel.Sentry.Syscalls;
using AppKernel.Vfs;
using FileMode = AppKernel.Vfs.FileMode;

namespace AppKernel.Sentry.Fs.Dev.Pts;

/// <summary>
/// One pseudo-terminal pair: the slave's termios and window size, the line discipline (Linux's
/// n_tty: canonical line editing, echo, ISIG signals, CR/NL mapping, output post-processing), the
/// queue from the slave to the master, and the job-control state (session, foreground process group).
/// Master and slave descriptions (<see cref="PtyMaster"/>, <see cref="PtySlave"/>) are views of it.
/// </summary>
internal sealed class Terminal
{
    /// <summary>N_TTY_BUF_SIZE: the input side holds at most this much.</summary>
    private const int InputCapacity = 4096;

    /// <summary>How much slave output waits for the master to read it before writers block.</summary>
    private const int OutputCapacity = 65536;

    private readonly object gate = new();
    private readonly List<byte> readable = new();
    private readonly List<int> lines = new(); // canonical mode: lengths of the complete lines at the head of readable (0 = EOF)
    private readonly List<byte> editLine = new();
    private readonly Queue<byte> output = new();
    private Termios termios = Termios.Default;
    private WindowSize windowSize;
    private int slaveOpens;
    private bool slaveClosed;
    private bool masterOpen = true;

    public Terminal(Kernel.Kernel kernel, int index, FileOwner owner)
    {
        Kernel = kernel;
        Index = index;
        Owner = owner;
    }

    public Kernel.Kernel Kernel { get; }

    /// <summary>N in /dev/pts/N.</summary>
    public int Index { get; }

    /// <summary>Who owns /dev/pts/N (the opener of /dev/ptmx; chown and chmod change it).</summary>
    public FileOwner Owner { get; set; }

    public FileMode Permissions { get; set; } = (FileMode)0x190; // 0620

    /// <summary>TIOCSPTLCK: the slave cannot be opened while locked (new pairs start locked; unlockpt clears it).</summary>
    public bool Locked { get; set; } = true;

    /// <summary>TIOCPKT: master reads start with a status byte.</summary>
    public bool PacketMode { get; set; }

    /// <summary>The session this is the controlling terminal of, or 0.</summary>
    public int Session { get; set; }

    /// <summary>The foreground process group, or 0.</summary>
    public int ForegroundGroup { get; set; }

    public WaitQueue MasterWaiters { get; } = new();

    public WaitQueue SlaveWaiters { get; } = new();

    public bool MasterOpen
    {
        get
        {
            lock (gate)
            {
                return masterOpen;
            }
        }
    }

    /// <summary>The device number of /dev/pts/N (major 136).</summary>
    public ulong Device => DeviceNumbers.Make(DevPtsFileSystem.SlaveMajor, (uint)Index);

    // ---- the master side -------------------------------------------------------------------

    /// <summary>Bytes the slave wrote (and echoes), for the master; EIO once every slave is closed and nothing is left.</summary>
    public long ReadFromMaster(Span<byte> buffer)
    {
        lock (gate)
        {
            int start = 0;
            if (PacketMode && buffer.Length > 0 && output.Count > 0)
            {
                buffer[0] = 0; // TIOCPKT_DATA
                start = 1;
            }

            if (output.Count == 0)
            {
                throw ErrnoException.Of(slaveClosed ? Errno.EIO : Errno.EAGAIN);
            }

            int n = start;
            while (n < buffer.Length && output.Count > 0)
            {
                buffer[n++] = output.Dequeue();
            }

            NotifyAll();
            return n;
        }
    }

    /// <summary>Keyboard input from the master, through the line discipline.</summary>
    public long WriteFromMaster(ReadOnlySpan<byte> data)
    {
        var signals = new List<int>();
        long accepted = 0;
        lock (gate)
        {
            foreach (byte c in data)
            {
                if (!termios.Has(Termios.ICANON) && readable.Count >= InputCapacity - 1)
                {
                    break; // raw input waits for the reader
                }

                ReceiveInput(c, signals);
                accepted++;
            }

            if (accepted == 0 && data.Length > 0)
            {
                throw ErrnoException.Of(Errno.EAGAIN);
            }

            NotifyAll();
        }

        foreach (int signal in signals)
        {
            SignalForeground(signal);
        }

        return accepted;
    }

    public PollEvents PollMaster(PollEvents mask)
    {
        lock (gate)
        {
            var ready = PollEvents.None;
            if (output.Count > 0)
            {
                ready |= PollEvents.In | PollEvents.ReadNormal;
            }

            if (termios.Has(Termios.ICANON) || readable.Count < InputCapacity - 1)
            {
                ready |= PollEvents.Out | PollEvents.WriteNormal;
            }

            if (slaveClosed)
            {
                ready |= PollEvents.HangUp;
            }

            return ready & (mask | PollEvents.HangUp | PollEvents.Error);
        }
    }

    /// <summary>The master's last close hangs the terminal up: its session leader gets SIGHUP and SIGCONT, slaves read EOF.</summary>
    public void CloseMaster()
    {
        int session, foreground;
        lock (gate)
        {
            masterOpen = false;
            session = Session;
            foreground = ForegroundGroup;
            NotifyAll();
        }

        if (session != 0)
        {
            Disassociate(session, foreground, signalLeader: true);
        }
    }

    // ---- the slave side ----------------------------------------------------------------------

    /// <summary>A slave description opened: the first opener that is a session leader without a terminal gets this one, unless O_NOCTTY.</summary>
    public void OpenSlave(KernelTask? task, OpenFlags flags)
    {
        lock (gate)
        {
            if (!masterOpen || Locked)
            {
                throw ErrnoException.Of(Errno.EIO);
            }

            slaveOpens++;
            slaveClosed = false;
        }

        if (task is not null && (flags & OpenFlags.NoControllingTty) == 0)
        {
            var group = task.Group;
            lock (task.Kernel.Pids.Gate)
            {
                if (group.Session == group.Pid && group.ControllingTerminal is null && Session == 0)
                {
                    Attach(group);
                }
            }
        }
    }

    public void CloseSlave()
    {
        lock (gate)
        {
            if (--slaveOpens == 0)
            {
                slaveClosed = true;
            }

            NotifyAll();
        }
    }

    /// <summary>A read that never blocks (splice, sendfile): what a non-blocking read(2) gives.</summary>
    public long ReadFromSlave(Span<byte> buffer) => ReadFromSlave(KernelTask.Current, buffer, nonBlocking: true);

    /// <summary>
    /// read(2) on the slave. Canonical mode returns one line. Non-canonical mode follows n_tty's
    /// VMIN/VTIME rules (termios(3)): VMIN 0 and VTIME 0 is a poll; VMIN 0 and VTIME &gt; 0 waits
    /// up to VTIME tenths of a second for the first byte (then returns 0); VMIN &gt; 0 and VTIME 0
    /// waits for VMIN bytes; VMIN &gt; 0 and VTIME &gt; 0 waits for the first byte, then returns once
    /// VMIN bytes arrived or VTIME passed since the last one (an inter-byte timer). Bytes are taken
    /// as they arrive, so a signal or an expired timer returns what was read so far.
    /// </summary>
    public long ReadFromSlave(KernelTask? task, Span<byte> buffer, bool nonBlocking)
    {
        long total = 0;
        long deadline = -1;
        bool first = true;
        while (true)
        {
            if (task is not null)
            {
                CheckJobControl(task, Signals.SIGTTIN);
            }

            lock (gate)
            {
                if (!masterOpen)
                {
                    return total; // a hung-up terminal reads end of file
                }

                if (termios.Has(Termios.ICANON))
                {
                    if (lines.Count > 0)
                    {
                        int length = lines[0];
                        if (length == 0)
                        {
                            lines.RemoveAt(0); // end of file, typed as VEOF at the start of a line
                            return 0;
                        }

                        long n = Math.Min(buffer.Length, length);
                        Consume(buffer[..(int)n]);
                        NotifyAll();
                        return n;
                    }
                }
                else
                {
                    int vmin = termios.ControlChars[Termios.VMIN], vtime = termios.ControlChars[Termios.VTIME];
                    if (readable.Count > 0)
                    {
                        int n = (int)Math.Min(buffer.Length - total, readable.Count);
                        Consume(buffer.Slice((int)total, n));
                        total += n;
                        NotifyAll();
                        if (total >= Math.Max(1, vmin) || total == buffer.Length)
                        {
                            return total;
                        }

                        // Short of VMIN: the inter-byte timer (re)starts at each arrival.
                        deadline = vtime > 0 ? AppKernel.Sentry.Kernel.Kernel.Now + vtime * 100_000_000L : -1;
                    }
                    else if (vmin == 0 && vtime == 0)
                    {
                        return total; // a poll
                    }
                    else if (first && vmin == 0)
                    {
                        deadline = AppKernel.Sentry.Kernel.Kernel.Now + vtime * 100_000_000L; // a read timer from the start
                    }
                }
            }

            first = false;
            if (nonBlocking || task is null)
            {
                return total > 0 ? total : throw ErrnoException.Of(Errno.EAGAIN);
            }

            bool arrived;
            try
            {
                arrived = task.WaitUntil(SlaveWaiters, PollEvents.In | PollEvents.HangUp, SlaveHasInput, deadline);
            }
            catch (ErrnoException) when (total > 0)
            {
                return total; // a signal: what was read so far
            }

            if (!arrived)
            {
                return total; // VTIME passed
            }
        }
    }

    private bool SlaveHasInput()
    {
        lock (gate)
        {
            return !masterOpen || (termios.Has(Termios.ICANON) ? lines.Count > 0 : readable.Count > 0);
        }
    }

    public long WriteFromSlave(ReadOnlySpan<byte> data)
    {
        if (KernelTask.Current is { } task && termios.Has(Termios.TOSTOP))
        {
            CheckJobControl(task, Signals.SIGTTOU);
        }

        lock (gate)
        {
            if (!masterOpen)
            {
                throw ErrnoException.Of(Errno.EIO);
            }

            long accepted = 0;
            foreach (byte c in data)
            {
                if (output.Count >= OutputCapacity - 1)
                {
                    break;
                }

                Output(c);
                accepted++;
            }

            if (accepted == 0 && data.Length > 0)
            {
                throw ErrnoException.Of(Errno.EAGAIN);
            }

            NotifyAll();
            return accepted;
        }
    }

    public PollEvents PollSlave(PollEvents mask)
    {
        lock (gate)
        {
            if (!masterOpen)
            {
                return (PollEvents.In | PollEvents.Out | PollEvents.ReadNormal | PollEvents.WriteNormal | PollEvents.HangUp | PollEvents.Error) & (mask | PollEvents.HangUp | PollEvents.Error);
            }

            var ready = PollEvents.None;
            bool canonical = termios.Has(Termios.ICANON);
            int minimum = termios.ControlChars[Termios.VTIME] == 0 ? Math.Max(1, (int)termios.ControlChars[Termios.VMIN]) : 1;
            if (canonical ? lines.Count > 0 : readable.Count >= minimum)
            {
                ready |= PollEvents.In | PollEvents.ReadNormal;
            }

            if (output.Count < OutputCapacity - 1)
            {
                ready |= PollEvents.Out | PollEvents.WriteNormal;
            }

            return ready & mask;
        }
    }

    // ---- settings shared by both sides ------------------------------------------------------

    public Termios GetTermios()
    {
        lock (gate)
        {
            return termios;
        }
    }

    public void SetTermios(in Termios value, bool flushInput)
    {
        lock (gate)
        {
            bool wasCanonical = termios.Has(Termios.ICANON);
            termios = value;
            if (flushInput)
            {
                FlushInput();
            }
            else if (wasCanonical && !termios.Has(Termios.ICANON))
            {
                // Leaving canonical mode: the line being edited becomes readable as it stands.
                lines.Clear();
                readable.AddRange(editLine);
                editLine.Clear();
            }
            else if (!wasCanonical && termios.Has(Termios.ICANON) && readable.Count > 0)
            {
                lines.Clear();
                lines.Add(readable.Count);
            }

            NotifyAll();
        }
    }

    public WindowSize GetWindowSize()
    {
        lock (gate)
        {
            return windowSize;
        }
    }

    public void SetWindowSize(WindowSize size)
    {
        bool changed;
        lock (gate)
        {
            changed = !windowSize.Equals(size);
            windowSize = size;
        }

        if (changed)
        {
            SignalForeground(Signals.SIGWINCH);
        }
    }

    /// <summary>TCFLSH: 0 discards unread input, 1 unsent output, 2 both.</summary>
    public void Flush(int queue)
    {
        lock (gate)
        {
            if (queue is 0 or 2)
            {
                FlushInput();
            }

            if (queue is 1 or 2)
            {
                output.Clear();
            }

            NotifyAll();
        }
    }

    /// <summary>FIONREAD on the slave: bytes a read could return.</summary>
    public int InputAvailable
    {
        get
        {
            lock (gate)
            {
                return readable.Count;
            }
        }
    }

    /// <summary>FIONREAD on the master, TIOCOUTQ on the slave: output not yet read by the master.</summary>
    public int OutputPending
    {
        get
        {
            lock (gate)
            {
                return output.Count;
            }
        }
    }

    // ---- job control ------------------------------------------------------------------------

    /// <summary>Makes this the controlling terminal of <paramref name="group"/>'s session (the caller holds the pid gate).</summary>
    public void Attach(ThreadGroup group)
    {
        Session = group.Session;
        ForegroundGroup = group.ProcessGroup;
        foreach (var member in group.Kernel.Pids.Groups())
        {
            if (member.Session == group.Session && member.ControllingTerminal is null)
            {
                member.ControllingTerminal = this;
            }
        }
    }

    /// <summary>
    /// The terminal leaves its session (hang-up, TIOCNOTTY by the leader, the leader's exit): the
    /// foreground group gets SIGHUP and SIGCONT, with <paramref name="signalLeader"/> the session
    /// leader too, and no process of the session has a controlling terminal any more.
    /// </summary>
    public void Disassociate(int session, int foreground, bool signalLeader)
    {
        var pids = Kernel.Pids;
        lock (pids.Gate)
        {
            foreach (var group in pids.Groups())
            {
                if (group.ControllingTerminal == this)
                {
                    group.ControllingTerminal = null;
                }
            }

            if (Session == session)
            {
                Session = 0;
                ForegroundGroup = 0;
            }
        }

        if (signalLeader && pids.FindGroup(session) is { } leader && leader.ProcessGroup != foreground)
        {
            SendKernelSignal(leader, Signals.SIGHUP);
            SendKernelSignal(leader, Signals.SIGCONT);
        }

        if (foreground != 0)
        {
            SignalProcessGroup(foreground, Signals.SIGHUP);
            SignalProcessGroup(foreground, Signals.SIGCONT);
        }
    }

    /// <summary>
    /// A background process of this terminal's session that reads (SIGTTIN), or writes with TOSTOP or
    /// changes settings (SIGTTOU): its group is signalled and the call restarts after the stop. An
    /// ignored or blocked SIGTTIN, or an orphaned group, gives EIO; an ignored or blocked SIGTTOU lets it through.
    /// </summary>
    public void CheckJobControl(KernelTask task, int signal)
    {
        var group = task.Group;
        int foreground = ForegroundGroup;
        if (group.ControllingTerminal != this || foreground == 0 || group.ProcessGroup == foreground)
        {
            return;
        }

        bool ignoredOrBlocked = group.Handlers.Get(signal).Handler == Signals.SIG_IGN || (task.SignalMask & Signals.Bit(signal)) != 0;
        if (ignoredOrBlocked)
        {
            if (signal == Signals.SIGTTIN)
            {
                throw ErrnoException.Of(Errno.EIO);
            }

            return;
        }

        if (IsOrphaned(group.ProcessGroup))
        {
            throw ErrnoException.Of(Errno.EIO);
        }

        SignalProcessGroup(group.ProcessGroup, signal);
        throw ErrnoException.Of(Errno.ERESTARTSYS);
    }

    /// <summary>POSIX's orphaned process group: no member has a parent in another group of the same session.</summary>
    private bool IsOrphaned(int processGroup)
    {
        lock (Kernel.Pids.Gate)
        {
            return !Kernel.Pids.Groups().Any(g => g.ProcessGroup == processGroup && !g.Exiting &&
                g.Parent is { } parent && parent.ProcessGroup != processGroup && parent.Session == g.Session);
        }
    }

    private void SignalForeground(int signal)
    {
        int foreground = ForegroundGroup;
        if (foreground != 0)
        {
            SignalProcessGroup(foreground, signal);
        }
    }

    private void SignalProcessGroup(int processGroup, int signal)
    {
        foreach (var group in Kernel.Pids.Groups())
        {
            if (group.ProcessGroup == processGroup && !group.Exiting)
            {
                SendKernelSignal(group, signal);
            }
        }
    }

    private static void SendKernelSignal(ThreadGroup group, int signal)
    {
        // The sandbox's init only receives the signals it has a handler for, from the terminal too.
        if (group.Pid == 1 && group.Handlers.Get(signal).Handler is Signals.SIG_DFL or Signals.SIG_IGN)
        {
            return;
        }

        SignalSyscalls.SendToGroup(group, SignalInfo.Kernel(signal));
    }

    // ---- the line discipline (callers hold the gate) ------------------------------------------

    private void ReceiveInput(byte c, List<int> signals)
    {
        uint iflag = termios.InputFlags;
        if (c == '\r')
        {
            if ((iflag & Termios.IGNCR) != 0)
            {
                return;
            }

            if ((iflag & Termios.ICRNL) != 0)
            {
                c = (byte)'\n';
            }
        }
        else if (c == '\n' && (iflag & Termios.INLCR) != 0)
        {
            c = (byte)'\r';
        }

        if ((iflag & Termios.IXON) != 0 && (c == termios.Char(Termios.VSTART) || c == termios.Char(Termios.VSTOP)))
        {
            return; // flow control characters are consumed (output is never actually stopped here)
        }

        if (termios.Has(Termios.ISIG))
        {
            int signal = c == termios.Char(Termios.VINTR) ? Signals.SIGINT
                : c == termios.Char(Termios.VQUIT) ? Signals.SIGQUIT
                : c == termios.Char(Termios.VSUSP) ? Signals.SIGTSTP
                : 0;
            if (signal != 0)
            {
                if (!termios.Has(Termios.NOFLSH))
                {
                    FlushInput();
                    output.Clear();
                }

                Echo(c);
                signals.Add(signal);
                return;
            }
        }

        if (!termios.Has(Termios.ICANON))
        {
            readable.Add(c);
            Echo(c);
            return;
        }

        bool extended = termios.Has(Termios.IEXTEN);
        if (c == termios.Char(Termios.VERASE))
        {
            EraseCharacter();
        }
        else if (extended && c == termios.Char(Termios.VWERASE))
        {
            while (editLine.Count > 0 && editLine[^1] is (byte)' ' or (byte)'\t')
            {
                EraseCharacter();
            }

            while (editLine.Count > 0 && editLine[^1] is not ((byte)' ' or (byte)'\t'))
            {
                EraseCharacter();
            }
        }
        else if (c == termios.Char(Termios.VKILL))
        {
            if (termios.Has(Termios.ECHO) && termios.Has(Termios.ECHOKE) && termios.Has(Termios.ECHOE))
            {
                while (editLine.Count > 0)
                {
                    EraseCharacter();
                }
            }
            else
            {
                editLine.Clear();
                Echo(c);
                if (termios.Has(Termios.ECHO) && termios.Has(Termios.ECHOK))
                {
                    Output((byte)'\n');
                }
            }
        }
        else if (c == termios.Char(Termios.VEOF))
        {
            CompleteLine(); // not echoed; at the start of a line this is end of file
        }
        else if (c == '\n' || c == termios.Char(Termios.VEOL) || (extended && c == termios.Char(Termios.VEOL2)))
        {
            editLine.Add(c);
            if (termios.Has(Termios.ECHO) || (c == '\n' && termios.Has(Termios.ECHONL)))
            {
                EchoRaw(c);
            }

            CompleteLine();
        }
        else if (editLine.Count < InputCapacity - 1)
        {
            editLine.Add(c);
            Echo(c);
        }
    }

    private void CompleteLine()
    {
        readable.AddRange(editLine);
        lines.Add(editLine.Count);
        editLine.Clear();
    }

    private void EraseCharacter()
    {
        if (editLine.Count == 0)
        {
            return;
        }

        // With IUTF8 a multi-byte character goes as one.
        int start = editLine.Count - 1;
        if ((termios.InputFlags & Termios.IUTF8) != 0)
        {
            while (start > 0 && (editLine[start] & 0xC0) == 0x80)
            {
                start--;
            }
        }

        byte first = editLine[start];
        editLine.RemoveRange(start, editLine.Count - start);
        if (!termios.Has(Termios.ECHO))
        {
            return;
        }

        if (termios.Has(Termios.ECHOE))
        {
            int columns = IsControl(first) && termios.Has(Termios.ECHOCTL) ? 2 : first == '\t' ? 1 : 1;
            for (int i = 0; i < columns; i++)
            {
                output.Enqueue((byte)'\b');
                output.Enqueue((byte)' ');
                output.Enqueue((byte)'\b');
            }
        }
        else
        {
            Echo((byte)termios.Char(Termios.VERASE));
        }
    }

    private static bool IsControl(byte c) => (c < 0x20 && c != '\t' && c != '\n') || c == 0x7F;

    /// <summary>Echoes typed input: control characters as ^X with ECHOCTL.</summary>
    private void Echo(byte c)
    {
        if (!termios.Has(Termios.ECHO))
        {
            return;
        }

        if (IsControl(c) && termios.Has(Termios.ECHOCTL))
        {
            output.Enqueue((byte)'^');
            output.Enqueue((byte)(c ^ 0x40));
        }
        else
        {
            EchoRaw(c);
        }
    }

    private void EchoRaw(byte c) => Output(c);

    /// <summary>Output post-processing: ONLCR turns NL into CR NL, OCRNL CR into NL.</summary>
    private void Output(byte c)
    {
        uint oflag = termios.OutputFlags;
        if ((oflag & Termios.OPOST) != 0)
        {
            if (c == '\n' && (oflag & Termios.ONLCR) != 0)
            {
                output.Enqueue((byte)'\r');
            }
            else if (c == '\r' && (oflag & Termios.OCRNL) != 0)
            {
                c = (byte)'\n';
            }
        }

        output.Enqueue(c);
    }

    private void FlushInput()
    {
        readable.Clear();
        lines.Clear();
        editLine.Clear();
    }

    /// <summary>Removes the first <paramref name="destination"/>.Length readable bytes into it, keeping the line lengths in step.</summary>
    private void Consume(Span<byte> destination)
    {
        int n = destination.Length;
        for (int i = 0; i < n; i++)
        {
            destination[i] = readable[i];
        }

        readable.RemoveRange(0, n);
        int left = n;
        while (left > 0 && lines.Count > 0)
        {
            if (lines[0] <= left)
            {
                left -= lines[0];
                lines.RemoveAt(0);
            }
            else
            {
                lines[0] -= left;
                left = 0;
            }
        }
    }

    private void NotifyAll()
    {
        const PollEvents all = PollEvents.In | PollEvents.Out | PollEvents.ReadNormal | PollEvents.WriteNormal | PollEvents.HangUp;
        MasterWaiters.Notify(all);
        SlaveWaiters.Notify(all);
    }
}
