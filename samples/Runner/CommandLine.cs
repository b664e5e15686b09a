namespace AppKernel.Runner;

/// <summary>Parses <c>appkernel do [options] -- PROGRAM [ARGS...]</c>; errors are one line for the user.</summary>
internal static class CommandLine
{
    public const string Usage =
        "usage: appkernel do [--platform ptrace|kvm] [--rootfs DIR] [--rootfs-mode overlay|readonly|readwrite] [--strace | --strace-times]\n" +
        "                    [--env K=V]... [--cwd DIR] [--hostname NAME] [--plugins DIR] [--user UID[:GID]]\n" +
        "                    [--bind HOST[:SANDBOX][:ro]]... [--mount type=bind,src=HOST,dst=PATH[,ro]]... [--mount type=tmpfs,dst=PATH[,size=N[k|m|g]]]...\n" +
        "                    [--memory BYTES[k|m|g]] [--tasks N] [--open-files N] [--cpu SECONDS] [--wall SECONDS] [--output BYTES[k|m|g]]\n" +
        "                    [--network none|host] [--allow-connect CIDR[:PORT]]... [--allow-bind PORT]...\n" +
        "                    -- PROGRAM [ARGS...]\n" +
        "       appkernel            (runs a short demo inside a sandbox)";

    public static RunnerOptions Parse(IReadOnlyList<string> args)
    {
        var options = new RunnerOptions();
        int i = 0;
        string Value(string name)
        {
            if (i + 1 >= args.Count)
            {
                throw new UsageException($"option {name} needs a value");
            }

            return args[++i];
        }

        for (; i < args.Count; i++)
        {
            string arg = args[i];
            if (arg == "--")
            {
                i++;
                break;
            }

            if (!arg.StartsWith("--", StringComparison.Ordinal))
            {
                break;
            }

            string name = arg;
            string? inline = null;
            int eq = arg.IndexOf('=');
            if (eq > 0)
            {
                name = arg[..eq];
                inline = arg[(eq + 1)..];
            }

            string Take() => inline ?? Value(name);
            switch (name)
            {
                case "--platform":
                    options.Platform = Take();
                    break;
                case "--rootfs":
                    options.RootFs = Take();
                    break;
                case "--rootfs-mode":
                    options.RootFsMode = Take() switch
                    {
                        "overlay" => RootFsMode.Overlay,
                        "readonly" => RootFsMode.ReadOnly,
                        "readwrite" => RootFsMode.ReadWrite,
                        var other => throw new UsageException($"--rootfs-mode must be overlay, readonly or readwrite (was '{other}')"),
                    };
                    break;
                case "--strace":
                    options.Strace = true;
                    break;
                case "--strace-times":
                    options.Strace = true;
                    options.StraceTimes = true;
                    break;
                case "--env":
                {
                    string pair = Take();
                    int split = pair.IndexOf('=');
                    if (split <= 0)
                    {
                        throw new UsageException($"--env needs KEY=VALUE (was '{pair}')");
                    }

                    options.Environment.Add(new(pair[..split], pair[(split + 1)..]));
                    break;
                }

                case "--cwd":
                    options.WorkingDirectory = Take();
                    break;
                case "--hostname":
                    options.Hostname = Take();
                    break;
                case "--bind":
                {
                    // HOST[:SANDBOX][:ro]
                    var parts = Take().Split(':');
                    bool readOnly = parts.Length > 1 && parts[^1] == "ro";
                    if (readOnly)
                    {
                        parts = parts[..^1];
                    }

                    if (parts.Length is < 1 or > 2 || parts[0].Length == 0)
                    {
                        throw new UsageException("--bind needs HOST[:SANDBOX][:ro]");
                    }

                    string host = Path.GetFullPath(parts[0]);
                    options.Binds.Add(new MountSpec { Type = "bind", Source = host, Target = parts.Length == 2 ? parts[1] : host, ReadOnly = readOnly });
                    break;
                }

                case "--mount":
                    options.Binds.Add(ParseMount(Take()));
                    break;
                case "--user":
                    (options.Uid, options.Gid) = ParseUser(Take());
                    break;
                case "--memory":
                    options.MemoryBytes = Size(Take(), name);
                    break;
                case "--output":
                    options.OutputBytes = Size(Take(), name);
                    break;
                case "--tasks":
                    options.Tasks = int.TryParse(Take(), out int tasks) ? tasks : throw new UsageException("--tasks needs a number");
                    break;
                case "--open-files":
                    options.OpenFiles = int.TryParse(Take(), out int files) ? files : throw new UsageException("--open-files needs a number");
                    break;
                case "--cpu":
                    options.CpuSeconds = double.TryParse(Take(), System.Globalization.CultureInfo.InvariantCulture, out double cpu) ? cpu : throw new UsageException("--cpu needs seconds");
                    break;
                case "--wall":
                    options.WallSeconds = double.TryParse(Take(), System.Globalization.CultureInfo.InvariantCulture, out double wall) ? wall : throw new UsageException("--wall needs seconds");
                    break;
                case "--plugins":
                    options.PluginDirectory = Take();
                    break;
                case "--network":
                    options.Network = Take() switch
                    {
                        "none" => NetworkMode.None,
                        "host" => NetworkMode.Host,
                        var other => throw new UsageException($"--network must be none or host (was '{other}')"),
                    };
                    break;
                case "--allow-connect":
                    options.AllowConnect.Add(Take());
                    break;
                case "--allow-bind":
                    options.AllowBind.Add(int.TryParse(Take(), out int port) ? port : throw new UsageException("--allow-bind needs a port number"));
                    break;
                default:
                    throw new UsageException($"unknown option {name}");
            }
        }

        for (; i < args.Count; i++)
        {
            options.Command.Add(args[i]);
        }

        if (options.Command.Count == 0)
        {
            throw new UsageException("no program given");
        }

        return options;
    }

    /// <summary>
    /// One <c>--mount</c> spec: comma-separated KEY=VALUE pairs (and the flag <c>ro</c>), like
    /// <c>type=bind,src=HOST,dst=PATH,ro</c> or <c>type=tmpfs,dst=PATH,size=64m</c>.
    /// </summary>
    internal static MountSpec ParseMount(string spec)
    {
        string? type = null, source = null, target = null;
        long? size = null;
        bool readOnly = false;
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (string item in spec.Split(','))
        {
            int eq = item.IndexOf('=');
            string key = eq < 0 ? item : item[..eq];
            string? value = eq < 0 ? null : item[(eq + 1)..];
            // Each key once; aliases count as their key.
            string canonical = key switch
            {
                "src" or "source" => "src",
                "dst" or "destination" or "target" => "dst",
                "ro" or "readonly" => "ro",
                _ => key,
            };
            if (key.Length == 0)
            {
                throw new UsageException($"--mount: empty item in '{spec}'");
            }

            if (!seen.Add(canonical))
            {
                throw new UsageException($"--mount: '{key}' given twice in '{spec}'");
            }

            switch (canonical)
            {
                case "type":
                    type = NonEmpty(value, key, spec);
                    break;
                case "src":
                    source = NonEmpty(value, key, spec);
                    break;
                case "dst":
                    target = NonEmpty(value, key, spec);
                    break;
                case "ro":
                    readOnly = value switch
                    {
                        null or "true" or "1" => true,
                        "false" or "0" => false,
                        _ => throw new UsageException($"--mount: {key} takes no value or true/false (was '{value}')"),
                    };
                    break;
                case "size":
                    size = Size(NonEmpty(value, key, spec), "--mount size=");
                    if (size <= 0)
                    {
                        throw new UsageException("--mount size= must be positive");
                    }

                    break;
                default:
                    throw new UsageException($"--mount: unknown key '{key}' in '{spec}' (type, src, dst, ro, size)");
            }
        }

        if (type is null)
        {
            throw new UsageException($"--mount needs type=bind or type=tmpfs (was '{spec}')");
        }

        if (type is not ("bind" or "tmpfs"))
        {
            throw new UsageException($"--mount: unknown type '{type}' (bind or tmpfs)");
        }

        if (target is null || target[0] != '/')
        {
            throw new UsageException($"--mount needs dst=PATH, an absolute path inside the sandbox (was '{spec}')");
        }

        if (type == "bind")
        {
            if (source is null)
            {
                throw new UsageException($"--mount type=bind needs src=HOST (was '{spec}')");
            }

            if (size is not null)
            {
                throw new UsageException("--mount: size= applies to type=tmpfs only");
            }

            return new MountSpec { Type = "bind", Source = Path.GetFullPath(source), Target = target, ReadOnly = readOnly };
        }

        if (source is not null)
        {
            throw new UsageException("--mount: src= applies to type=bind only");
        }

        return new MountSpec { Type = "tmpfs", Source = "tmpfs", Target = target, ReadOnly = readOnly, Data = size is { } bytes ? $"size={bytes}" : null };
    }

    private static string NonEmpty(string? value, string key, string spec) =>
        string.IsNullOrEmpty(value) ? throw new UsageException($"--mount: {key} needs a value (in '{spec}')") : value;

    /// <summary><c>--user UID[:GID]</c>: numeric ids; the group defaults to the user's id.</summary>
    internal static (int Uid, int Gid) ParseUser(string text)
    {
        int colon = text.IndexOf(':');
        string uid = colon < 0 ? text : text[..colon];
        string gid = colon < 0 ? uid : text[(colon + 1)..];
        static bool Id(string s, out int id) =>
            int.TryParse(s, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out id);
        return Id(uid, out int u) && Id(gid, out int g)
            ? (u, g)
            : throw new UsageException($"--user needs UID[:GID] as numbers (was '{text}')");
    }

    /// <summary>A byte count with an optional k, m or g suffix (powers of 1024).</summary>
    private static long Size(string text, string option)
    {
        long factor = 1;
        char last = text.Length > 0 ? char.ToLowerInvariant(text[^1]) : '\0';
        if (last is 'k' or 'm' or 'g')
        {
            factor = last switch { 'k' => 1L << 10, 'm' => 1L << 20, _ => 1L << 30 };
            text = text[..^1];
        }

        return long.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out long value) && value <= long.MaxValue / factor
            ? value * factor
            : throw new UsageException($"{option} needs a size such as 512m");
    }
}

/// <summary>A command-line mistake: reported in one line with exit status 125.</summary>
internal sealed class UsageException(string message) : Exception(message);
