using System.Globalization;
using System.Text;
using AppKernel.Sentry.Abi;
using AppKernel.Sentry.Kernel;
using AppKernel.Sentry.Net;
using AppKernel.Sentry.Syscalls;
using AppKernel.Sentry.Vfs;
using AppKernel.Vfs;

namespace AppKernel.Sentry.Fs.Proc;

/// <summary>
/// procfs as the sandbox sees it: its own processes, memory and mounts, never the host's.
/// Names are computed at each lookup, so the VFS does not cache them.
/// </summary>
internal sealed partial class ProcFileSystem : IFileSystem
{
    private readonly Kernel.Kernel kernel;
    private readonly ProcDirectory root;

    // One boot of the sandbox's kernel: /proc/sys/kernel/random/boot_id stays the same within it.
    private readonly string bootId = Guid.NewGuid().ToString("D");
    private static readonly Lazy<string> HostCpuInfo = new(() =>
    {
        try
        {
            return File.ReadAllText("/proc/cpuinfo");
        }
        catch (IOException)
        {
            return "";
        }
    });

    public ProcFileSystem(Kernel.Kernel kernel)
    {
        this.kernel = kernel;
        MountTime = Timespec.Now;
        root = new ProcDirectory(this, 1, RootEntries);
    }

    public string TypeName => "proc";

    public IInode Root => root;

    public bool CachesLookups => false;

    public Timespec MountTime { get; }

    public FileSystemStatistics GetStatistics() => new(LinuxConstants.PROC_SUPER_MAGIC, 4096, 0, 0, 0, 0, 0);

    private static ulong Ino(string path) => (ulong)(path.GetHashCode() & 0x7fffffff) + 4096;

    private static KernelTask Current => KernelTask.Current ?? throw ErrnoException.Of(Errno.ENOENT);

    private IEnumerable<(string, Func<IInode>)> RootEntries()
    {
        yield return ("self", () => new ProcSymlink(this, 2, () => Current.Pid.ToString(CultureInfo.InvariantCulture)));
        yield return ("thread-self", () => new ProcSymlink(this, 3, () => $"{Current.Pid}/task/{Current.Tid}"));
        yield return ("mounts", () => new ProcSymlink(this, 4, () => "self/mounts"));
        yield return ("net", () => new ProcSymlink(this, 5, () => "self/net"));
        yield return ("meminfo", () => new ProcFile(this, Ino("meminfo"), ProcFile.Text(MemInfo)));
        yield return ("cpuinfo", () => new ProcFile(this, Ino("cpuinfo"), ProcFile.Text(() => HostCpuInfo.Value)));
        yield return ("stat", () => new ProcFile(this, Ino("stat"), ProcFile.Text(SystemStat)));
        yield return ("uptime", () => new ProcFile(this, Ino("uptime"), ProcFile.Text(Uptime)));
        yield return ("loadavg", () => new ProcFile(this, Ino("loadavg"), ProcFile.Text(() => $"0.00 0.00 0.00 1/{kernel.Pids.TaskCount} {kernel.Pids.Tasks().Select(t => t.Tid).DefaultIfEmpty(0).Max()}\n")));
        yield return ("version", () => new ProcFile(this, Ino("version"), ProcFile.Text(() => $"Linux version {kernel.Options.KernelRelease} (appkernel) #1 SMP PREEMPT_DYNAMIC AppKernel\n")));
        yield return ("filesystems", () => new ProcFile(this, Ino("filesystems"), ProcFile.Text(() => "nodev\tproc\nnodev\ttmpfs\nnodev\tdevtmpfs\nnodev\toverlay\nnodev\t9p\n")));
        yield return ("cmdline", () => new ProcFile(this, Ino("cmdline"), ProcFile.Text(() => "appkernel\n")));
        yield return ("sys", () => SysDirectory());
        foreach (var group in kernel.Pids.Groups())
        {
            var g = group;
            yield return (g.Pid.ToString(CultureInfo.InvariantCulture), () => ProcessDirectory(g, null));
        }
    }

    private ProcDirectory SysDirectory()
    {
        var options = kernel.Options;
        IEnumerable<(string, Func<IInode>)> Files(string path, (string Name, Func<string> Text)[] files) =>
            files.Select(f => (f.Name, (Func<IInode>)(() => new ProcFile(this, Ino(path + "/" + f.Name), ProcFile.Text(f.Text)))));
        ProcDirectory Dir(string path, params (string Name, Func<string> Text)[] files) => new(this, Ino(path), () => Files(path, files));
        ProcDirectory Parent(string path, params (string Name, ProcDirectory Directory)[] children) =>
            new(this, Ino(path), () => children.Select(c => (c.Name, (Func<IInode>)(() => c.Directory))));

        (string, Func<string>)[] kernelFiles =
        [
            ("hostname", () => (KernelTask.Current?.UtsOrRoot ?? kernel.RootUts).Hostname + "\n"),
            ("domainname", () => (KernelTask.Current?.UtsOrRoot ?? kernel.RootUts).DomainName + "\n"),
            ("osrelease", () => options.KernelRelease + "\n"),
            ("ostype", () => "Linux\n"),
            ("version", () => "#1 SMP PREEMPT_DYNAMIC AppKernel\n"),
            ("pid_max", () => PidNamespace.PidMax + "\n"),
            ("ngroups_max", () => "65536\n"),
            ("cap_last_cap", () => "40\n"),
            ("threads-max", () => (options.Limits.Tasks ?? 63704) + "\n"),
        ];
        var vmDir = Dir("sys/vm",
            ("overcommit_memory", () => "0\n"),
            ("max_map_count", () => "65530\n"),
            ("mmap_min_addr", () => "65536\n"));
        var randomDir = Dir("sys/kernel/random",
            ("boot_id", () => bootId + "\n"),
            ("uuid", () => Guid.NewGuid().ToString("D") + "\n"),
            ("entropy_avail", () => "256\n"),
            ("poolsize", () => "256\n"));
        var netCoreDir = Dir("sys/net/core",
            ("somaxconn", () => "4096\n"));
        var netIpv4Dir = Dir("sys/net/ipv4",
            ("ip_local_port_range", () => $"{SocketConstants.EphemeralFirst}\t{SocketConstants.EphemeralLast}\n"));
        var kernelDir = new ProcDirectory(this, Ino("sys/kernel"), () =>
            Files("sys/kernel", kernelFiles).Append(("random", () => randomDir)));
        var fsDir = Dir("sys/fs",
            ("pipe-max-size", () => Pipe.MaxCapacity + "\n"),
            ("nr_open", () => "1048576\n"),
            ("file-max", () => "9223372036854775807\n"));
        return Parent("sys", ("kernel", kernelDir), ("vm", vmDir), ("fs", fsDir),
            ("net", Parent("sys/net", ("core", netCoreDir), ("ipv4", netIpv4Dir))));
    }

    private string MemInfo()
    {
        long total = (kernel.Options.Limits.MemoryBytes ?? HostMemory.TotalBytes) / 1024;
        long used = kernel.MemoryFile.ResidentBytes / 1024;
        long free = Math.Max(0, total - used);
        var b = new StringBuilder();
        void Line(string name, long kb) => b.Append(CultureInfo.InvariantCulture, $"{name + ":",-16}{kb,8} kB\n");
        Line("MemTotal", total);
        Line("MemFree", free);
        Line("MemAvailable", free);
        Line("Buffers", 0);
        Line("Cached", 0);
        Line("SwapCached", 0);
        Line("Active", used);
        Line("Inactive", 0);
        Line("SwapTotal", 0);
        Line("SwapFree", 0);
        Line("Dirty", 0);
        Line("AnonPages", used);
        Line("Mapped", 0);
        Line("Shmem", 0);
        Line("CommitLimit", total);
        Line("Committed_AS", kernel.MemoryFile.AllocatedBytes / 1024);
        Line("VmallocTotal", 34359738367);
        Line("HugePages_Total", 0);
        Line("Hugepagesize", 2048);
        return b.ToString();
    }

    private string SystemStat()
    {
        // CPU time in ticks: every live process's own and its reaped descendants' (each reaped
        // process is counted once, in its reaper's children), idle the rest of the elapsed time of
        // every CPU. The Sentry does not see which host CPU ran a task, so the per-CPU lines share
        // the totals evenly.
        const long tick = 1_000_000_000 / TimerConstants.UserHz;
        long user = 0, system = 0;
        foreach (var group in kernel.Pids.Groups())
        {
            var times = group.Timers.CpuTime + group.Timers.ChildrenCpuTime;
            user += times.User / tick;
            system += times.System / tick;
        }

        int cpus = Environment.ProcessorCount;
        long idle = Math.Max(0, (Kernel.Kernel.Now - kernel.BootTime) / tick * cpus - user - system);
        var b = new StringBuilder();
        b.Append(CultureInfo.InvariantCulture, $"cpu  {user} 0 {system} {idle} 0 0 0 0 0 0\n");
        for (int i = 0; i < cpus; i++)
        {
            b.Append(CultureInfo.InvariantCulture, $"cpu{i} {user / cpus} 0 {system / cpus} {idle / cpus} 0 0 0 0 0 0\n");
        }

        long boot = DateTimeOffset.UtcNow.ToUnixTimeSeconds() - (Kernel.Kernel.Now - kernel.BootTime) / 1_000_000_000;
        b.Append(CultureInfo.InvariantCulture, $"intr 0\nctxt 0\nbtime {boot}\nprocesses {kernel.Pids.Groups().Length}\nprocs_running 1\nprocs_blocked 0\nsoftirq 0 0 0 0 0 0 0 0 0 0 0\n");
        return b.ToString();
    }

    private string Uptime()
    {
        double seconds = (Kernel.Kernel.Now - kernel.BootTime) / 1e9;
        return string.Create(CultureInfo.InvariantCulture, $"{seconds:F2} {seconds * Environment.ProcessorCount:F2}\n");
    }
}
