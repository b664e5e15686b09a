namespace AppKernel.Sentry.Hosting;

/// <summary>Deep copies of <see cref="SandboxOptions"/>, so per-sandbox changes never leak into the shared options.</summary>
internal static class SandboxOptionsCopy
{
    public static SandboxOptions Clone(SandboxOptions source)
    {
        var copy = new SandboxOptions
        {
            RootFs = source.RootFs,
            RootFsMode = source.RootFsMode,
            Platform = source.Platform,
            Network = source.Network,
            WorkingDirectory = source.WorkingDirectory,
            Hostname = source.Hostname,
            KernelRelease = source.KernelRelease,
            Uid = source.Uid,
            Gid = source.Gid,
            Strace = source.Strace,
            StraceTimes = source.StraceTimes,
            RandomSeed = source.RandomSeed,
            AuditEvents = source.AuditEvents,
            AuditEventCapacity = source.AuditEventCapacity,
        };

        foreach (var mount in source.Mounts)
        {
            copy.Mounts.Add(new MountSpec
            {
                Target = mount.Target,
                Type = mount.Type,
                Source = mount.Source,
                ReadOnly = mount.ReadOnly,
                Data = mount.Data,
            });
        }

        foreach (var rule in source.AllowConnect)
        {
            copy.AllowConnect.Add(rule);
        }

        foreach (var port in source.AllowBind)
        {
            copy.AllowBind.Add(port);
        }

        copy.Environment.Clear();
        foreach (var (key, value) in source.Environment)
        {
            copy.Environment[key] = value;
        }

        copy.Limits.MemoryBytes = source.Limits.MemoryBytes;
        copy.Limits.Tasks = source.Limits.Tasks;
        copy.Limits.OpenFiles = source.Limits.OpenFiles;
        copy.Limits.CpuSeconds = source.Limits.CpuSeconds;
        copy.Limits.WallSeconds = source.Limits.WallSeconds;
        copy.Limits.OutputBytes = source.Limits.OutputBytes;
        return copy;
    }
}
