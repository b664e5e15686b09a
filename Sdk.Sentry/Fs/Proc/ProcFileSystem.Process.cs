using System.Globalization;
using System.Text;
using AppKernel.Platform;
using AppKernel.Sentry.Abi;
using AppKernel.Sentry.Kernel;
using AppKernel.Sentry.Memory;
using AppKernel.Sentry.Syscalls;
using AppKernel.Sentry.Vfs;
using AppKernel.Vfs;

namespace AppKernel.Sentry.Fs.Proc;

// /proc/PID and /proc/PID/task/TID.
internal sealed partial class ProcFileSystem
{
    private ProcDirectory ProcessDirectory(ThreadGroup group, KernelTask? thread)
    {
        string prefix = thread is null ? $"{group.Pid}" : $"{group.Pid}/task/{thread.Tid}";
        int uid = (group.Leader ?? thread)?.Credentials.RealUid ?? 0;
        KernelTask Task() => thread ?? group.Leader ?? group.Tasks.FirstOrDefault() ?? throw ErrnoException.Of(Errno.ESRCH);
        ProcFile File(string name, Func<string> text) => new(this, Ino(prefix + "/" + name), ProcFile.Text(text), uid: uid);
        ProcFile Bytes(string name, Func<byte[]> data, AppKernel.Vfs.FileMode mode = (AppKernel.Vfs.FileMode)0x124) => new(this, Ino(prefix + "/" + name), data, mode, uid);

        IEnumerable<(string, Func<IInode>)> Entries()
        {
            yield return ("cmdline", () => Bytes("cmdline", () => MemoryRange(group, m => (m.ArgStart, m.ArgEnd))));
            yield return ("environ", () => Bytes("environ", () => MemoryRange(group, m => (m.EnvStart, m.EnvEnd)), (AppKernel.Vfs.FileMode)0x100));
            yield return ("auxv", () => Bytes("auxv", () => Auxv(group), (AppKernel.Vfs.FileMode)0x100));
            yield return ("comm", () => File("comm", () => Task().Name + "\n"));
            yield return ("stat", () => File("stat", () => ProcessStat(group, Task(), threadView: thread is not null)));
            yield return ("statm", () => File("statm", () => Statm(group)));
            yield return ("status", () => File("status", () => Status(group, Task(), threadView: thread is not null)));
            yield return ("maps", () => File("maps", () => Maps(group)));
            yield return ("smaps", () => File("smaps", () => Smaps(group)));
            yield return ("smaps_rollup", () => File("smaps_rollup", () => SmapsRollup(group)));
            yield return ("mounts", () => File("mounts", () => Mounts(Task())));
            yield return ("mountinfo", () => File("mountinfo", () => MountInfo(Task())));
            yield return ("limits", () => File("limits", () => Limits(group)));
            yield return ("cgroup", () => File("cgroup", () => "0::/\n"));
            yield return ("mem", () => new ProcMemFile(this, Ino(prefix + "/mem"), group, uid));
            yield return ("io", () => new ProcFile(this, Ino(prefix + "/io"), ProcFile.Text(() => Io(group)), (AppKernel.Vfs.FileMode)0x100, uid));
            yield return ("oom_score", () => File("oom_score", () => OomScore(group).ToString(CultureInfo.InvariantCulture) + "\n"));
            yield return ("oom_score_adj", () => new ProcFile(this, Ino(prefix + "/oom_score_adj"),
                ProcFile.Text(() => group.OomScoreAdj.ToString(CultureInfo.InvariantCulture) + "\n"), (AppKernel.Vfs.FileMode)0x1A4, uid,
                text => SetOomScoreAdj(group, ParseOomValue(text, -1000, 1000), legacy: false)));
            yield return ("oom_adj", () => new ProcFile(this, Ino(prefix + "/oom_adj"),
                ProcFile.Text(() => LegacyOomAdj(group.OomScoreAdj).ToString(CultureInfo.InvariantCulture) + "\n"), (AppKernel.Vfs.FileMode)0x1A4, uid,
                text => SetOomScoreAdj(group, FromLegacyOomAdj(ParseOomValue(text, -17, 15)), legacy: true)));
            yield return ("exe", () => new ProcMagicLink(this, Ino(prefix + "/exe"), () => group.ExecutablePath, () => ExeTarget(group), uid));
            yield return ("cwd", () => new ProcMagicLink(this, Ino(prefix + "/cwd"), () => PathOf(Task(), Task().Fs.Cwd), () => new MagicLinkTarget(Task().Fs.Cwd, null), uid));
            yield return ("root", () => new ProcMagicLink(this, Ino(prefix + "/root"), () => PathOf(Task(), Task().Fs.Root), () => new MagicLinkTarget(Task().Fs.Root, null), uid));
            yield return ("fd", () => new ProcDirectory(this, Ino(prefix + "/fd"), () => FdEntries(prefix, Task(), uid), uid));
            yield return ("fdinfo", () => new ProcDirectory(this, Ino(prefix + "/fdinfo"), () => FdInfoEntries(prefix, Task(), uid), uid));
            yield return ("net", () => NetDirectory(prefix, uid));
            if (thread is null)
            {
                yield return ("task", () => new ProcDirectory(this, Ino(prefix + "/task"), () =>
                    group.Tasks.Select(t => (t.Tid.ToString(CultureInfo.InvariantCulture), (Func<IInode>)(() => ProcessDirectory(group, t)))), uid));
            }
        }

        return new ProcDirectory(this, Ino(prefix), Entries, uid);
    }

    private static string PathOf(KernelTask task, VfsPath path)
    {
        var viewer = KernelTask.Current ?? task;
        string text = VirtualFileSystem.PathString(path, viewer.Fs.Root);
        return path.Dentry.Deleted ? text + " (deleted)" : text;
    }

    private static MagicLinkTarget ExeTarget(ThreadGroup group)
    {
        var viewer = KernelTask.Current ?? throw ErrnoException.Of(Errno.ENOENT);
        return new MagicLinkTarget(viewer.Kernel.Vfs.Resolve(viewer.PathContext, group.ExecutablePath, followFinal: true).Path, null);
    }

    private IEnumerable<(string, Func<IInode>)> FdEntries(string prefix, KernelTask task, int uid)
    {
        foreach (var (fd, description) in task.Fds.Snapshot())
        {
            var d = description;
            string name = fd.ToString(CultureInfo.InvariantCulture);
            yield return (name, () => new ProcMagicLink(this, Ino(prefix + "/fd/" + name),
                () => d.Path is { } p ? PathOf(task, p) : d.Name,
                () => d.Path is { } p ? new MagicLinkTarget(p, null) : new MagicLinkTarget(null, d),
                uid));
        }
    }

    private IEnumerable<(string, Func<IInode>)> FdInfoEntries(string prefix, KernelTask task, int uid)
    {
        foreach (var (fd, description) in task.Fds.Snapshot())
        {
            var d = description;
            string name = fd.ToString(CultureInfo.InvariantCulture);
            bool cloexec = task.Fds.TryGet(fd, out _) && task.Fds.GetCloseOnExec(fd);
            yield return (name, () => new ProcFile(this, Ino(prefix + "/fdinfo/" + name), ProcFile.Text(() =>
            {
                uint flags = (uint)d.Flags | (cloexec ? (uint)OpenFlags.CloseOnExec : 0);
                return $"pos:\t{d.Offset}\nflags:\t0{Convert.ToString(flags, 8)}\nmnt_id:\t{d.Path?.Mount.Id ?? 0}\nino:\t{d.Operations.Inode?.GetAttributes().Ino ?? 0}\n";
            }), uid: uid));
        }
    }

    private static byte[] MemoryRange(ThreadGroup group, Func<Memory.MemoryManager, (ulong Start, ulong End)> range)
    {
        if (group.Memory is not { } mm)
        {
            return [];
        }

        var (start, end) = range(mm);
        if (end <= start || end - start > 1 << 22)
        {
            return [];
        }

        var bytes = new byte[end - start];
        try
        {
            mm.Read(start, bytes);
        }
        catch (ErrnoException)
        {
            return [];
        }

        return bytes;
    }

    private static byte[] Auxv(ThreadGroup group)
    {
        var auxv = group.Memory?.Auxv ?? [];
        var bytes = new byte[auxv.Length * 8];
        for (int i = 0; i < auxv.Length; i++)
        {
            BitConverter.TryWriteBytes(bytes.AsSpan(i * 8), auxv[i]);
        }

        return bytes;
    }

    private static string Maps(ThreadGroup group)
    {
        var b = new StringBuilder();
        foreach (var (start, end, vma) in group.Memory?.SnapshotVmas() ?? [])
        {
            AppendMapsLine(b, start, end, vma);
        }

        return b.ToString();
    }

    private static void AppendMapsLine(StringBuilder b, ulong start, ulong end, Vma vma)
    {
        char r = (vma.Access & MemoryAccess.Read) != 0 ? 'r' : '-';
        char w = (vma.Access & MemoryAccess.Write) != 0 ? 'w' : '-';
        char x = (vma.Access & MemoryAccess.Execute) != 0 ? 'x' : '-';
        char s = vma.Shared ? 's' : 'p';
        long offset = vma.Mappable is null ? 0 : vma.FileOffset;
        AppendMapsLine(b, string.Create(CultureInfo.InvariantCulture,
            $"{start:x8}-{end:x8} {r}{w}{x}{s} {offset:x8} {LinuxConstants.Major(vma.Device):x2}:{LinuxConstants.Minor(vma.Device):x2} {vma.Inode} "), vma.Name);
    }

    private static void AppendMapsLine(StringBuilder b, string line, string? name)
    {
        b.Append(line);
        if (name is not null)
        {
            b.Append(' ', Math.Max(0, 73 - line.Length)).Append(name);
        }

        b.Append('\n');
    }

    private static string Smaps(ThreadGroup group)
    {
        var b = new StringBuilder();
        foreach (var (start, end, vma, residency) in group.Memory?.SnapshotResidency() ?? [])
        {
            AppendMapsLine(b, start, end, vma);
            AppendSize(b, "Size:", end - start);
            AppendSize(b, "KernelPageSize:", MemoryManager.PageSize);
            AppendSize(b, "MMUPageSize:", MemoryManager.PageSize);
            AppendResidency(b, residency, rollup: false);
            AppendValue(b, "THPeligible:", 0);
            AppendValue(b, "ProtectionKey:", 0);
            b.Append("VmFlags: ").Append(VmFlags(vma)).Append('\n');
        }

        return b.ToString();
    }

    private static string SmapsRollup(ThreadGroup group)
    {
        var b = new StringBuilder();
        var areas = group.Memory?.SnapshotResidency() ?? [];
        var total = new Residency();
        foreach (var area in areas)
        {
            total.Include(area.Residency);
        }

        // Linux spans the first to the last area, and shows nothing for an empty address space.
        ulong first = areas.Count > 0 ? areas[0].Start : 0;
        ulong last = areas.Count > 0 ? areas[^1].End : 0;
        AppendMapsLine(b, string.Create(CultureInfo.InvariantCulture, $"{first:x8}-{last:x8} ---p 00000000 00:00 0 "), "[rollup]");
        AppendResidency(b, total, rollup: true);
        return b.ToString();
    }

    // The fields both smaps and smaps_rollup show, in Linux's order.
    private static void AppendResidency(StringBuilder b, Residency r, bool rollup)
    {
        AppendSize(b, "Rss:", r.Rss);
        AppendSize(b, "Pss:", r.Pss);
        AppendSize(b, "Pss_Dirty:", r.PssDirty);
        if (rollup)
        {
            AppendSize(b, "Pss_Anon:", r.PssAnon);
            AppendSize(b, "Pss_File:", r.PssFile);
            AppendSize(b, "Pss_Shmem:", r.PssShmem);
        }

        AppendSize(b, "Shared_Clean:", r.SharedClean);
        AppendSize(b, "Shared_Dirty:", r.SharedDirty);
        AppendSize(b, "Private_Clean:", r.PrivateClean);
        AppendSize(b, "Private_Dirty:", r.PrivateDirty);
        AppendSize(b, "Referenced:", r.Rss);
        AppendSize(b, "Anonymous:", r.Anonymous);
        foreach (string none in (string[])["KSM:", "LazyFree:", "AnonHugePages:", "ShmemPmdMapped:", "FilePmdMapped:",
                     "Shared_Hugetlb:", "Private_Hugetlb:", "Swap:", "SwapPss:", "Locked:"])
        {
            AppendSize(b, none, 0);
        }
    }

    private static void AppendSize(StringBuilder b, string label, ulong bytes) =>
        b.Append(CultureInfo.InvariantCulture, $"{label,-16}{bytes / 1024,8} kB\n");

    private static void AppendValue(StringBuilder b, string label, ulong value) =>
        b.Append(CultureInfo.InvariantCulture, $"{label,-16}{value,8}\n");

    // Linux's two-letter VmFlags in bit order. A shared mapping of a file opened read-only is
    // "may share" but not "shared", and cannot become writable.
    private static string VmFlags(Vma vma)
    {
        var b = new StringBuilder();
        bool mayWrite = (vma.MaxAccess & MemoryAccess.Write) != 0;
        void Flag(bool on, string name)
        {
            if (on)
            {
                b.Append(name).Append(' ');
            }
        }

        Flag((vma.Access & MemoryAccess.Read) != 0, "rd");
        Flag((vma.Access & MemoryAccess.Write) != 0, "wr");
        Flag((vma.Access & MemoryAccess.Execute) != 0, "ex");
        Flag(vma.Shared && mayWrite, "sh");
        Flag((vma.MaxAccess & MemoryAccess.Read) != 0, "mr");
        Flag(mayWrite, "mw");
        Flag((vma.MaxAccess & MemoryAccess.Execute) != 0, "me");
        Flag(vma.Shared, "ms");
        Flag(vma.GrowsDown, "gd");
        Flag(vma.DontFork, "dc");
        Flag(vma.Accounted, "ac");
        return b.ToString();
    }

    private static string Statm(ThreadGroup group)
    {
        var sizes = AreaSizes.Of(group);
        var resident = group.Memory?.TotalResidency() ?? new Residency();
        const ulong page = MemoryManager.PageSize;
        return string.Create(CultureInfo.InvariantCulture,
            $"{sizes.Total / page} {resident.Rss / page} {(resident.RssFile + resident.RssShmem) / page} {sizes.Exe / page} 0 {(sizes.Data + sizes.Stack) / page} 0\n");
    }

    // Times are in clock ticks (USER_HZ): the process's and its reaped children's CPU, or one
    // thread's own in /proc/PID/task/TID/stat; the start time counts from the sandbox's boot.
    private string ProcessStat(ThreadGroup group, KernelTask task, bool threadView)
    {
        ulong vsize = group.Memory?.MappedBytes ?? 0;
        ulong rss = (group.Memory?.PopulatedBytes ?? 0) / 4096;
        const long tick = 1_000_000_000 / TimerConstants.UserHz;
        long start = ((threadView ? task.StartTime : group.StartTime) - kernel.BootTime) / tick;
        var cpu = threadView ? task.CpuTime : group.Timers.CpuTime;
        var children = threadView ? default : group.Timers.ChildrenCpuTime;
        char state = State(group, task, threadView);
        var terminal = group.ControllingTerminal;
        int ttyIndex = terminal?.Index ?? 0;
        int ttyNumber = terminal is null ? 0 : (ttyIndex & 0xff) | (136 << 8) | ((ttyIndex & ~0xff) << 12);
        int foreground = terminal is { ForegroundGroup: > 0 } ? terminal.ForegroundGroup : -1;
        // The kernel's view: 20 + nice for the fair classes, -1 - rt_priority for real-time ones.
        int priority = task.Scheduling.IsRealTime ? -1 - task.Scheduling.Priority : 20 + task.Scheduling.Nice;
        return string.Create(CultureInfo.InvariantCulture,
            $"{task.Tid} ({task.Name}) {state} {group.Parent?.Pid ?? 0} {group.ProcessGroup} {group.Session} {ttyNumber} {foreground} 4194560 0 0 0 0 {cpu.User / tick} {cpu.System / tick} {children.User / tick} {children.System / tick} {priority} {task.Scheduling.Nice} {group.Tasks.Length} 0 {start} {vsize} {rss} 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 0 {task.Scheduling.Priority} {task.Scheduling.Policy} 0 0 0 0 0 0 0 0 0 0 0\n");
    }

    // Running for the reader itself (it is on a CPU as it reads), sleeping otherwise: the Sentry
    // does not track which of the other threads is on a CPU at this instant.
    private static char State(ThreadGroup group, KernelTask task, bool threadView) =>
        group.Exiting ? 'Z' : ReferenceEquals(task, KernelTask.Current) || (!threadView && ReferenceEquals(KernelTask.Current?.Group, group)) ? 'R' : 'S';

    private static string Status(ThreadGroup group, KernelTask task, bool threadView)
    {
        var creds = task.Credentials;
        var mm = group.Memory;
        ulong ignored = 0, caught = 0;
        for (int signal = 1; signal <= Signals.NSIG; signal++)
        {
            var action = group.Handlers.Get(signal);
            if (action.Handler == Signals.SIG_IGN)
            {
                ignored |= Signals.Bit(signal);
            }
            else if (action.Handler != Signals.SIG_DFL)
            {
                caught |= Signals.Bit(signal);
            }
        }

        var b = new StringBuilder();
        b.Append(CultureInfo.InvariantCulture, $"Name:\t{task.Name}\n");
        b.Append(CultureInfo.InvariantCulture, $"Umask:\t{Convert.ToString(task.Fs?.Umask ?? 0, 8).PadLeft(4, '0')}\n");
        b.Append(CultureInfo.InvariantCulture, $"State:\t{State(group, task, threadView) switch { 'Z' => "Z (zombie)", 'R' => "R (running)", _ => "S (sleeping)" }}\n");
        b.Append(CultureInfo.InvariantCulture, $"Tgid:\t{group.Pid}\nNgid:\t0\nPid:\t{task.Tid}\nPPid:\t{group.Parent?.Pid ?? 0}\nTracerPid:\t0\n");
        b.Append(CultureInfo.InvariantCulture, $"Uid:\t{creds.RealUid}\t{creds.EffectiveUid}\t{creds.SavedUid}\t{creds.FsUid}\n");
        b.Append(CultureInfo.InvariantCulture, $"Gid:\t{creds.RealGid}\t{creds.EffectiveGid}\t{creds.SavedGid}\t{creds.FsGid}\n");
        b.Append(CultureInfo.InvariantCulture, $"FDSize:\t64\nGroups:\t{string.Join(' ', creds.Groups)}\n");
        b.Append(CultureInfo.InvariantCulture, $"NStgid:\t{group.Pid}\nNSpid:\t{task.Tid}\nNSpgid:\t{group.ProcessGroup}\nNSsid:\t{group.Session}\n");
        var sizes = AreaSizes.Of(group);
        var resident = mm?.TotalResidency() ?? new Residency();
        void Size(string label, ulong bytes) => b.Append(CultureInfo.InvariantCulture, $"{label}:\t{bytes / 1024,8} kB\n");
        Size("VmPeak", mm?.PeakMappedBytes ?? 0);
        Size("VmSize", sizes.Total);
        Size("VmLck", 0);
        Size("VmPin", 0);
        Size("VmHWM", Math.Max(mm?.PeakPopulatedBytes ?? 0, resident.Rss));
        Size("VmRSS", resident.Rss);
        Size("RssAnon", resident.RssAnon);
        Size("RssFile", resident.RssFile);
        Size("RssShmem", resident.RssShmem);
        Size("VmData", sizes.Data);
        Size("VmStk", sizes.Stack);
        Size("VmExe", sizes.Exe);
        Size("VmLib", sizes.Lib);
        Size("VmPTE", 0);
        Size("VmSwap", 0);
        Size("HugetlbPages", 0);
        b.Append(CultureInfo.InvariantCulture, $"Threads:\t{group.Tasks.Length}\nSigQ:\t0/63704\n");
        b.Append(CultureInfo.InvariantCulture, $"SigPnd:\t{task.Pending.Pending:x16}\nShdPnd:\t{group.SharedPending.Pending:x16}\n");
        b.Append(CultureInfo.InvariantCulture, $"SigBlk:\t{task.SignalMask:x16}\nSigIgn:\t{ignored:x16}\nSigCgt:\t{caught:x16}\n");
        b.Append(CultureInfo.InvariantCulture, $"CapInh:\t{creds.InheritableCaps:x16}\nCapPrm:\t{creds.PermittedCaps:x16}\nCapEff:\t{creds.EffectiveCaps:x16}\n");
        b.Append(CultureInfo.InvariantCulture, $"CapBnd:\t{creds.BoundingCaps:x16}\nCapAmb:\t0000000000000000\n");
        b.Append(CultureInfo.InvariantCulture, $"NoNewPrivs:\t{(task.NoNewPrivileges ? 1 : 0)}\nSeccomp:\t0\n");
        b.Append(CultureInfo.InvariantCulture, $"Cpus_allowed_list:\t0-{Environment.ProcessorCount - 1}\n");
        b.Append("voluntary_ctxt_switches:\t0\nnonvoluntary_ctxt_switches:\t0\n");
        return b.ToString();
    }

    private string Mounts(KernelTask task)
    {
        var b = new StringBuilder();
        foreach (var mount in kernel.Vfs.Mounts)
        {
            var point = mount.Parent is null ? task.Fs.Root : new VfsPath(mount.Parent, mount.MountPoint!);
            string target = mount.Parent is null ? "/" : VirtualFileSystem.PathString(point, task.Fs.Root);
            b.Append(CultureInfo.InvariantCulture, $"{mount.Source} {target} {mount.FileSystem.TypeName} {(mount.ReadOnly ? "ro" : "rw")},relatime 0 0\n");
        }

        return b.ToString();
    }

    private string MountInfo(KernelTask task)
    {
        var b = new StringBuilder();
        foreach (var mount in kernel.Vfs.Mounts)
        {
            var point = mount.Parent is null ? task.Fs.Root : new VfsPath(mount.Parent, mount.MountPoint!);
            string target = mount.Parent is null ? "/" : VirtualFileSystem.PathString(point, task.Fs.Root);
            b.Append(CultureInfo.InvariantCulture,
                $"{mount.Id} {mount.Parent?.Id ?? mount.Id} 0:{mount.DeviceMinor} / {target} {(mount.ReadOnly ? "ro" : "rw")},relatime - {mount.FileSystem.TypeName} {mount.Source} {(mount.ReadOnly ? "ro" : "rw")}\n");
        }

        return b.ToString();
    }

    // Linux's badness as /proc/PID/oom_score shows it: resident memory in thousandths of what the
    // sandbox may use, moved by oom_score_adj, never below 0.
    private long OomScore(ThreadGroup group)
    {
        long total = Math.Max(1, (kernel.Options.Limits.MemoryBytes ?? HostMemory.TotalBytes) / 4096);
        long resident = (long)((group.Memory?.PopulatedBytes ?? 0) / 4096);
        long points = resident + (long)group.OomScoreAdj * (total / 1000);
        return points > 0 ? points * 1000 / total : 0;
    }

    private static int ParseOomValue(string text, int min, int max)
    {
        // One value per write, surrounding white space allowed, as kstrtoint after strstrip.
        string value = text.Length > 12 ? text[..12] : text;
        if (!int.TryParse(value.Trim(), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out int parsed) || parsed < min || parsed > max)
        {
            throw ErrnoException.Of(Errno.EINVAL);
        }

        return parsed;
    }

    // Without CAP_SYS_RESOURCE, oom_score_adj cannot go below the floor a privileged writer set
    // (0 at first), and the legacy oom_adj cannot go down at all. A privileged oom_score_adj
    // write also moves the floor.
    private static void SetOomScoreAdj(ThreadGroup group, int value, bool legacy)
    {
        var writer = KernelTask.Current ?? throw ErrnoException.Of(Errno.ESRCH);
        bool privileged = writer.Credentials.HasCapability(24 /* CAP_SYS_RESOURCE */);
        if (!privileged && value < (legacy ? group.OomScoreAdj : group.OomScoreAdjMin))
        {
            throw ErrnoException.Of(Errno.EACCES);
        }

        group.OomScoreAdj = value;
        if (privileged && !legacy)
        {
            group.OomScoreAdjMin = value;
        }
    }

    // The legacy -17..15 scale: 15 is the maximum, -17 "never kill", the rest scale by 1000/17.
    private static int LegacyOomAdj(int scoreAdj) => scoreAdj == 1000 ? 15 : scoreAdj * 17 / 1000;

    private static int FromLegacyOomAdj(int adj) => adj == 15 ? 1000 : adj * 1000 / 17;

    private static string Io(ThreadGroup group)
    {
        var io = group.Io;
        return string.Create(CultureInfo.InvariantCulture,
            $"rchar: {io.ReadBytes}\nwchar: {io.WrittenBytes}\nsyscr: {io.ReadCalls}\nsyscw: {io.WriteCalls}\nread_bytes: 0\nwrite_bytes: 0\ncancelled_write_bytes: 0\n");
    }

    private static string Limits(ThreadGroup group)
    {
        (string Name, int Resource, string Unit)[] rows =
        [
            ("Max cpu time", ResourceLimits.CPU, "seconds"), ("Max file size", ResourceLimits.FSIZE, "bytes"),
            ("Max data size", ResourceLimits.DATA, "bytes"), ("Max stack size", ResourceLimits.STACK, "bytes"),
            ("Max core file size", ResourceLimits.CORE, "bytes"), ("Max resident set", ResourceLimits.RSS, "bytes"),
            ("Max processes", ResourceLimits.NPROC, "processes"), ("Max open files", ResourceLimits.NOFILE, "files"),
            ("Max locked memory", ResourceLimits.MEMLOCK, "bytes"), ("Max address space", ResourceLimits.AS, "bytes"),
            ("Max file locks", ResourceLimits.LOCKS, "locks"), ("Max pending signals", ResourceLimits.SIGPENDING, "signals"),
            ("Max msgqueue size", ResourceLimits.MSGQUEUE, "bytes"), ("Max nice priority", ResourceLimits.NICE, ""),
            ("Max realtime priority", ResourceLimits.RTPRIO, ""), ("Max realtime timeout", ResourceLimits.RTTIME, "us"),
        ];
        var b = new StringBuilder();
        b.Append(CultureInfo.InvariantCulture, $"{"Limit",-26}{"Soft Limit",-21}{"Hard Limit",-21}{"Units",-10}\n");
        foreach (var (name, resource, unit) in rows)
        {
            var limit = group.Limits.Get(resource);
            string Show(ulong v) => v == ResourceLimits.Infinity ? "unlimited" : v.ToString(CultureInfo.InvariantCulture);
            b.Append(CultureInfo.InvariantCulture, $"{name,-26}{Show(limit.Current),-21}{Show(limit.Max),-21}{unit,-10}\n");
        }

        return b.ToString();
    }
}
