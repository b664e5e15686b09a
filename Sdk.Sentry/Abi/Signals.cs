namespace AppKernel.Sentry.Abi;

/// <summary>Linux x86-64 signal numbers and the constants of signal(7), sigaction(2) and siginfo.</summary>
internal static class Signals
{
    public const int SIGHUP = 1, SIGINT = 2, SIGQUIT = 3, SIGILL = 4, SIGTRAP = 5, SIGABRT = 6, SIGBUS = 7,
        SIGFPE = 8, SIGKILL = 9, SIGUSR1 = 10, SIGSEGV = 11, SIGUSR2 = 12, SIGPIPE = 13, SIGALRM = 14,
        SIGTERM = 15, SIGSTKFLT = 16, SIGCHLD = 17, SIGCONT = 18, SIGSTOP = 19, SIGTSTP = 20, SIGTTIN = 21,
        SIGTTOU = 22, SIGURG = 23, SIGXCPU = 24, SIGXFSZ = 25, SIGVTALRM = 26, SIGPROF = 27, SIGWINCH = 28,
        SIGIO = 29, SIGPWR = 30, SIGSYS = 31, SIGRTMIN = 32, SIGRTMAX = 64;

    public const int NSIG = 64;

    // sa_flags
    public const ulong SA_NOCLDSTOP = 1, SA_NOCLDWAIT = 2, SA_SIGINFO = 4, SA_RESTORER = 0x04000000,
        SA_ONSTACK = 0x08000000, SA_RESTART = 0x10000000, SA_NODEFER = 0x40000000, SA_RESETHAND = 0x80000000;

    public const ulong SIG_DFL = 0, SIG_IGN = 1;

    // rt_sigprocmask how
    public const int SIG_BLOCK = 0, SIG_UNBLOCK = 1, SIG_SETMASK = 2;

    // si_code values
    public const int SI_USER = 0, SI_KERNEL = 0x80, SI_QUEUE = -1, SI_TIMER = -2, SI_TKILL = -6;
    public const int SEGV_MAPERR = 1, SEGV_ACCERR = 2;
    public const int BUS_ADRERR = 2;
    public const int CLD_EXITED = 1, CLD_KILLED = 2, CLD_DUMPED = 3, CLD_TRAPPED = 4, CLD_STOPPED = 5, CLD_CONTINUED = 6;

    // sigaltstack
    public const int SS_ONSTACK = 1, SS_DISABLE = 2;
    public const ulong SS_AUTODISARM = 1UL << 31;
    public const ulong MINSIGSTKSZ = 2048;

    /// <summary>The mask bit of signal <paramref name="signal"/> (1-based, as in sigset_t).</summary>
    public static ulong Bit(int signal) => 1UL << (signal - 1);

    /// <summary>Signals that can be neither caught, blocked nor ignored.</summary>
    public static readonly ulong Unblockable = Bit(SIGKILL) | Bit(SIGSTOP);

    /// <summary>What a signal does when its handler is SIG_DFL.</summary>
    public static DefaultAction DefaultActionOf(int signal) => signal switch
    {
        SIGCHLD or SIGURG or SIGWINCH or SIGCONT => signal == SIGCONT ? DefaultAction.Continue : DefaultAction.Ignore,
        SIGSTOP or SIGTSTP or SIGTTIN or SIGTTOU => DefaultAction.Stop,
        SIGQUIT or SIGILL or SIGTRAP or SIGABRT or SIGBUS or SIGFPE or SIGSEGV or SIGXCPU or SIGXFSZ or SIGSYS => DefaultAction.Core,
        _ => DefaultAction.Terminate,
    };

    /// <summary>Synchronous signals raised by the CPU for the faulting thread.</summary>
    public static bool IsSynchronous(int signal) => signal is SIGSEGV or SIGBUS or SIGILL or SIGFPE or SIGTRAP;

    public static string Name(int signal) => signal switch
    {
        SIGHUP => "SIGHUP", SIGINT => "SIGINT", SIGQUIT => "SIGQUIT", SIGILL => "SIGILL", SIGTRAP => "SIGTRAP",
        SIGABRT => "SIGABRT", SIGBUS => "SIGBUS", SIGFPE => "SIGFPE", SIGKILL => "SIGKILL", SIGUSR1 => "SIGUSR1",
        SIGSEGV => "SIGSEGV", SIGUSR2 => "SIGUSR2", SIGPIPE => "SIGPIPE", SIGALRM => "SIGALRM", SIGTERM => "SIGTERM",
        SIGSTKFLT => "SIGSTKFLT", SIGCHLD => "SIGCHLD", SIGCONT => "SIGCONT", SIGSTOP => "SIGSTOP", SIGTSTP => "SIGTSTP",
        SIGTTIN => "SIGTTIN", SIGTTOU => "SIGTTOU", SIGURG => "SIGURG", SIGXCPU => "SIGXCPU", SIGXFSZ => "SIGXFSZ",
        SIGVTALRM => "SIGVTALRM", SIGPROF => "SIGPROF", SIGWINCH => "SIGWINCH", SIGIO => "SIGIO", SIGPWR => "SIGPWR",
        SIGSYS => "SIGSYS",
        _ => signal >= SIGRTMIN && signal <= SIGRTMAX ? $"SIGRT_{signal - SIGRTMIN}" : $"signal {signal}",
    };
}

/// <summary>The default disposition of a signal (signal(7)).</summary>
internal enum DefaultAction
{
    Terminate,
    Core,
    Ignore,
    Stop,
    Continue,
}
