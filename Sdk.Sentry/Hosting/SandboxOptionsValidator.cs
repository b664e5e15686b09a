using System.Net;
using Microsoft.Extensions.Options;

namespace AppKernel.Sentry.Hosting;

/// <summary>
/// Checks <see cref="SandboxOptions"/> before a sandbox starts; every failure names the option
/// and what is wrong with it, so a misconfigured host fails fast with a message a person can act on.
/// </summary>
internal sealed class SandboxOptionsValidator(
    IEnumerable<PlatformRegistration> platforms,
    DefaultPlatformSelection? defaultPlatform = null) : IValidateOptions<SandboxOptions>
{
    private readonly PlatformRegistration[] platforms = platforms.ToArray();

    public ValidateOptionsResult Validate(string? name, SandboxOptions options)
    {
        var failures = new List<string>();
        ValidateRoot(options, failures);
        ValidatePlatform(options, failures);
        ValidateLimits(options.Limits, failures);
        if (options.AuditEventCapacity < 1)
        {
            failures.Add($"SandboxOptions.AuditEventCapacity must be positive (was {options.AuditEventCapacity}).");
        }
        ValidateMounts(options, failures);
        ValidateNetwork(options, failures);

        if (string.IsNullOrEmpty(options.WorkingDirectory) || options.WorkingDirectory[0] != '/')
        {
            failures.Add($"SandboxOptions.WorkingDirectory must be an absolute path inside the sandbox (was '{options.WorkingDirectory}').");
        }

        if (string.IsNullOrEmpty(options.Hostname) || options.Hostname.Length > 64)
        {
            failures.Add($"SandboxOptions.Hostname must be 1 to 64 characters (was '{options.Hostname}').");
        }

        if (string.IsNullOrEmpty(options.KernelRelease) || options.KernelRelease.Length > 64)
        {
            failures.Add($"SandboxOptions.KernelRelease must be 1 to 64 characters (was '{options.KernelRelease}').");
        }

        if (options.Uid < 0)
        {
            failures.Add($"SandboxOptions.Uid must not be negative (was {options.Uid}).");
        }

        if (options.Gid < 0)
        {
            failures.Add($"SandboxOptions.Gid must not be negative (was {options.Gid}).");
        }

        foreach (var key in options.Environment.Keys)
        {
            if (key.Length == 0 || key.Contains('=') || key.Contains('\0'))
            {
                failures.Add($"SandboxOptions.Environment has an invalid variable name '{key}'.");
            }
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }

    /// <summary>The platform the options select: named, the builder's default, or the only one registered.</summary>
    public string? ResolvePlatformName(SandboxOptions options)
    {
        if (options.Platform is { } named)
        {
            return named;
        }

        if (defaultPlatform is not null)
        {
            return defaultPlatform.Name;
        }

        var distinct = platforms.Select(p => p.Name).Distinct(StringComparer.Ordinal).ToArray();
        return distinct.Length == 1 ? distinct[0] : null;
    }

    private static void ValidateRoot(SandboxOptions options, List<string> failures)
    {
        if (string.IsNullOrWhiteSpace(options.RootFs))
        {
            failures.Add("SandboxOptions.RootFs must name the host directory the sandbox sees as '/'.");
        }
        else if (File.Exists(options.RootFs))
        {
            failures.Add($"SandboxOptions.RootFs: '{options.RootFs}' is not a directory.");
        }
        else if (!Directory.Exists(options.RootFs))
        {
            failures.Add($"SandboxOptions.RootFs: '{options.RootFs}' does not exist.");
        }

        if (!Enum.IsDefined(options.RootFsMode))
        {
            failures.Add($"SandboxOptions.RootFsMode: {(int)options.RootFsMode} is not a root filesystem mode (Overlay, ReadOnly, ReadWrite).");
        }
    }

    private void ValidatePlatform(SandboxOptions options, List<string> failures)
    {
        var known = platforms.Select(p => p.Name).Distinct(StringComparer.Ordinal).ToArray();
        string? chosen = ResolvePlatformName(options);
        if (known.Length == 0)
        {
            failures.Add("SandboxOptions.Platform: no platform is registered; call UsePtracePlatform() or UseKvmPlatform() on the AppKernel builder.");
        }
        else if (chosen is null)
        {
            failures.Add($"SandboxOptions.Platform: several platforms are registered ({string.Join(", ", known)}); set Platform to choose one.");
        }
        else if (!known.Contains(chosen, StringComparer.Ordinal))
        {
            failures.Add($"SandboxOptions.Platform: unknown platform '{chosen}'; registered: {string.Join(", ", known)}.");
        }
    }

    private static void ValidateLimits(SandboxLimits limits, List<string> failures)
    {
        CheckPositive(limits.MemoryBytes, "MemoryBytes", failures);
        CheckPositive(limits.Tasks, "Tasks", failures);
        CheckPositive(limits.OpenFiles, "OpenFiles", failures);
        CheckPositive(limits.CpuSeconds, "CpuSeconds", failures);
        CheckPositive(limits.WallSeconds, "WallSeconds", failures);
        CheckPositive(limits.OutputBytes, "OutputBytes", failures);
        if (limits.MemoryBytes is > 0 and < 1 << 20)
        {
            failures.Add($"SandboxOptions.Limits.MemoryBytes must be at least 1 MiB (was {limits.MemoryBytes}).");
        }

        if (limits.OpenFiles is > 1 << 20)
        {
            failures.Add($"SandboxOptions.Limits.OpenFiles must be at most {1 << 20}, Linux's nr_open (was {limits.OpenFiles}).");
        }
    }

    private static void CheckPositive<T>(T? value, string name, List<string> failures)
        where T : struct, IComparable<T>
    {
        if (value is { } v && v.CompareTo(default) <= 0)
        {
            failures.Add($"SandboxOptions.Limits.{name} must be positive (was {v}).");
        }
    }

    private static void ValidateMounts(SandboxOptions options, List<string> failures)
    {
        var targets = new HashSet<string>(StringComparer.Ordinal);
        foreach (var mount in options.Mounts)
        {
            if (string.IsNullOrEmpty(mount.Target) || mount.Target[0] != '/')
            {
                failures.Add($"SandboxOptions.Mounts: target '{mount.Target}' must be an absolute path inside the sandbox.");
                continue;
            }

            if (mount.Target == "/")
            {
                failures.Add("SandboxOptions.Mounts: a mount on '/' conflicts with RootFs; set RootFs and RootFsMode instead.");
            }

            if (!targets.Add(mount.Target.TrimEnd('/')))
            {
                failures.Add($"SandboxOptions.Mounts: '{mount.Target}' is mounted twice.");
            }

            if (string.IsNullOrWhiteSpace(mount.Type))
            {
                failures.Add($"SandboxOptions.Mounts: the mount on '{mount.Target}' has no Type.");
            }
            else if (mount.Type == "bind" && !Directory.Exists(mount.Source) && !File.Exists(mount.Source))
            {
                failures.Add($"SandboxOptions.Mounts: bind source '{mount.Source}' for '{mount.Target}' does not exist on the host.");
            }
        }
    }

    private static void ValidateNetwork(SandboxOptions options, List<string> failures)
    {
        if (!Enum.IsDefined(options.Network))
        {
            failures.Add($"SandboxOptions.Network: {(int)options.Network} is not a network mode (None, Host).");
        }

        if (options.Network != NetworkMode.Host && (options.AllowConnect.Count > 0 || options.AllowBind.Count > 0))
        {
            failures.Add($"SandboxOptions.AllowConnect/AllowBind are set but Network is {options.Network}; allow rules only apply with NetworkMode.Host.");
        }

        foreach (var rule in options.AllowConnect)
        {
            if (!TryParseConnectRule(rule, out _, out _, out _))
            {
                failures.Add($"SandboxOptions.AllowConnect: '{rule}' is not CIDR or CIDR:PORT (e.g. 10.0.0.0/8 or 192.168.1.5/32:443).");
            }
        }

        foreach (int port in options.AllowBind)
        {
            if (port is < 1 or > 65535)
            {
                failures.Add($"SandboxOptions.AllowBind: port {port} is outside 1-65535.");
            }
        }
    }

    /// <summary>Parses <c>CIDR[:PORT]</c>; IPv6 networks are written in brackets when a port follows (<c>[::1]/128:80</c>).</summary>
    public static bool TryParseConnectRule(string rule, out IPNetwork network, out int? port, out string? error)
    {
        network = default;
        port = null;
        error = null;
        string cidr = rule;
        int colon = rule.LastIndexOf(':');
        if (colon > 0 && (rule.StartsWith('[') || rule.IndexOf(':') == colon))
        {
            if (!int.TryParse(rule.AsSpan(colon + 1), out int p) || p is < 1 or > 65535)
            {
                error = "bad port";
                return false;
            }

            port = p;
            cidr = rule[..colon].Replace("[", "").Replace("]", "");
        }

        if (!cidr.Contains('/'))
        {
            error = "missing prefix length";
            return false;
        }

        return IPNetwork.TryParse(cidr, out network);
    }
}
