using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using AppKernel.Gofer.Client;
using AppKernel.Gofer.Native;
using AppKernel.Gofer.Protocol;
using Microsoft.Extensions.Logging;

namespace AppKernel.Gofer;

/// <summary>
/// Starts Gofer processes. The Gofer is this very assembly run by the host's <c>dotnet</c>
/// (<c>dotnet exec</c>), so any application that references it can start one with no extra
/// file or step: the build copies the Gofer's runtimeconfig beside it in every referencing
/// project, and when it is missing (a package consumer) one is generated.
/// </summary>
/// <example>
/// <code>
/// using var gofer = GoferLauncher.Start(["/srv/rootfs"], readWrite: false, logger);
/// var root = new GoferFileSystem(gofer, rootIndex: 0, memoryFile, readOnly: true);
/// // mount root.Root as "/" (under a tmpfs overlay by default)
/// </code>
/// </example>
public static unsafe class GoferLauncher
{
    /// <summary>Starts a Gofer serving <paramref name="hostRoots"/> (root i is attach index i).</summary>
    /// <param name="hostRoots">Host directories to serve.</param>
    /// <param name="readWrite">True to let the sandbox modify them; false refuses every mutation with EROFS.</param>
    /// <param name="logger">Where start-up and failure diagnostics go.</param>
    /// <returns>The connection; the Gofer starts in the background (see <see cref="GoferConnection.WaitUntilReady"/>).</returns>
    /// <exception cref="GoferException">The Gofer could not be spawned.</exception>
    public static GoferConnection Start(IReadOnlyList<string> hostRoots, bool readWrite, ILogger? logger = null)
    {
        ArgumentNullException.ThrowIfNull(hostRoots);
        var roots = new GoferRoot[hostRoots.Count];
        for (int i = 0; i < roots.Length; i++)
        {
            roots[i] = new GoferRoot(hostRoots[i], !readWrite);
        }

        return Start(roots, null, logger);
    }

    /// <summary>Starts a Gofer serving <paramref name="roots"/> (root i is attach index i), each read-only or not.</summary>
    /// <param name="roots">Host directories to serve.</param>
    /// <param name="options">Launch options, or null for the defaults.</param>
    /// <param name="logger">Where start-up and failure diagnostics go.</param>
    /// <returns>
    /// The connection. This returns as soon as the process is spawned: the version handshake is
    /// answered in the background and awaited by the first request (or by
    /// <see cref="GoferConnection.WaitUntilReady"/>), so the Gofer's start overlaps the Sentry's.
    /// </returns>
    /// <exception cref="GoferException">The Gofer could not be spawned; the message says why.</exception>
    public static GoferConnection Start(IReadOnlyList<GoferRoot> roots, GoferLaunchOptions? options = null, ILogger? logger = null)
    {
        ArgumentNullException.ThrowIfNull(roots);
        options ??= new GoferLaunchOptions();
        if (roots.Count == 0)
        {
            throw new ArgumentException("the gofer needs at least one attach root", nameof(roots));
        }

        string dotnet = FindDotnetHost(options.DotnetHostPath);
        string assembly = options.GoferAssemblyPath ?? typeof(GoferLauncher).Assembly.Location;
        if (string.IsNullOrEmpty(assembly) || !File.Exists(assembly))
        {
            throw new GoferException("cannot find the gofer assembly on disk (single-file publishing is not supported: the gofer runs AppKernel.Sdk.Gofer.dll with dotnet exec)");
        }

        int control = -1, controlPeer = -1, data = -1, dataPeer = -1;
        try
        {
            int errno = SeqPacket.CreatePair(out control, out controlPeer);
            if (errno == 0)
            {
                errno = SeqPacket.CreatePair(out data, out dataPeer);
            }

            if (errno != 0)
            {
                throw new GoferException($"cannot create the gofer's sockets: {Host.ErrnoName(errno)}");
            }

            var arguments = new List<string> { "exec" };
            if (FindRuntimeConfig(assembly) is { } runtimeConfig)
            {
                arguments.Add("--runtimeconfig");
                arguments.Add(runtimeConfig);
            }

            arguments.AddRange(
            [
                assembly,
                "--fd", GoferProcess.ControlFd.ToString(CultureInfo.InvariantCulture),
                "--data-fd", GoferProcess.DataFd.ToString(CultureInfo.InvariantCulture),
                "--parent", Environment.ProcessId.ToString(CultureInfo.InvariantCulture),
            ]);
            foreach (var root in roots)
            {
                arguments.Add(root.ReadOnly ? "--ro" : "--rw");
                arguments.Add(Path.GetFullPath(root.HostPath));
            }

            var process = GoferProcess.Spawn(dotnet, arguments, [controlPeer, dataPeer]);
            var connection = new GoferConnection(process, control, data, options, logger);
            control = data = -1;
            return connection;
        }
        finally
        {
            Host.CloseQuietly(control);
            Host.CloseQuietly(data);
            Host.CloseQuietly(controlPeer);
            Host.CloseQuietly(dataPeer);
        }
    }

    /// <summary>
    /// The runtimeconfig to run the Gofer with: null when the build put one beside the assembly
    /// (project references copy it; <c>dotnet exec</c> finds it there), else one generated once
    /// into a private per-user directory (package consumers).
    /// </summary>
    internal static string? FindRuntimeConfig(string assembly)
    {
        string beside = Path.ChangeExtension(assembly, ".runtimeconfig.json");
        if (File.Exists(beside))
        {
            return null;
        }

        string directory = Path.Combine(Path.GetTempPath(), $"appkernel-gofer-{Host.GetEffectiveUid()}");
        try
        {
            Host.Stat stat;
            fixed (byte* path = Encoding.UTF8.GetBytes(directory + "\0"))
            {
                // Private: created 0700 by this user, never a symlink planted by someone else.
                Host.MkdirAt(Host.AT_FDCWD, path, 0x1c0);
                if (Host.Lstat(path, &stat) != 0 || (stat.Mode & Host.S_IFMT) != Host.S_IFDIR ||
                    stat.Uid != Host.GetEffectiveUid() || (stat.Mode & 0x3f) != 0)
                {
                    throw new GoferException($"cannot use {directory} for the gofer's runtimeconfig: it is not a private directory of this user");
                }
            }

            string content = RuntimeConfig();
            string file = Path.Combine(directory, $"gofer-{Environment.Version}.runtimeconfig.json");
            if (!File.Exists(file) || File.ReadAllText(file) != content)
            {
                string temporary = $"{file}.{Environment.ProcessId}.tmp";
                File.WriteAllText(temporary, content);
                File.Move(temporary, file, overwrite: true);
            }

            return file;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new GoferException($"cannot write the gofer's runtimeconfig in {directory}: {e.Message}", e);
        }
    }

    /// <summary>The <c>dotnet</c> host to run the Gofer with.</summary>
    internal static string FindDotnetHost(string? configured)
    {
        if (!string.IsNullOrEmpty(configured))
        {
            return File.Exists(configured) ? configured : throw new GoferException($"the configured dotnet host '{configured}' does not exist");
        }

        // The host of the install the current runtime comes from: <root>/shared/Microsoft.NETCore.App/<version>/.
        string runtimeDirectory = RuntimeEnvironment.GetRuntimeDirectory();
        string candidate = Path.GetFullPath(Path.Combine(runtimeDirectory, "..", "..", "..", "dotnet"));
        if (File.Exists(candidate))
        {
            return candidate;
        }

        if (Environment.ProcessPath is { } processPath && Path.GetFileName(processPath) == "dotnet")
        {
            return processPath;
        }

        if (Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } hostPath && File.Exists(hostPath))
        {
            return hostPath;
        }

        if (Environment.GetEnvironmentVariable("DOTNET_ROOT") is { Length: > 0 } root && File.Exists(Path.Combine(root, "dotnet")))
        {
            return Path.Combine(root, "dotnet");
        }

        throw new GoferException($"cannot find the dotnet host to run the gofer (looked beside the runtime in {runtimeDirectory}, DOTNET_HOST_PATH and DOTNET_ROOT); set GoferLaunchOptions.DotnetHostPath");
    }

    /// <summary>
    /// A runtimeconfig for the Gofer: the framework the Sentry runs on, invariant globalization
    /// (no ICU to load). Other start-up settings travel as environment variables (see <see cref="GoferProcess"/>).
    /// </summary>
    internal static string RuntimeConfig()
    {
        var version = Environment.Version;
        return $$"""
            {
              "runtimeOptions": {
                "tfm": "net{{version.Major}}.{{version.Minor}}",
                "framework": { "name": "Microsoft.NETCore.App", "version": "{{version.Major}}.{{version.Minor}}.{{version.Build}}" },
                "configProperties": {
                  "System.Globalization.Invariant": true
                }
              }
            }
            """;
    }
}
