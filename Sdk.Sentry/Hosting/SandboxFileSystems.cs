using AppKernel.Gofer;
using AppKernel.Sentry.Fs.Dev;
using AppKernel.Sentry.Fs.Dev.Pts;
using AppKernel.Sentry.Fs.Overlay;
using AppKernel.Sentry.Fs.Proc;
using AppKernel.Sentry.Fs.Sys;
using AppKernel.Sentry.Fs.Tmpfs;
using AppKernel.Sentry.Kernel;
using AppKernel.Sentry.Memory;
using AppKernel.Sentry.Vfs;
using AppKernel.Vfs;
using Microsoft.Extensions.Logging;
using FileMode = AppKernel.Vfs.FileMode;

namespace AppKernel.Sentry.Hosting;

/// <summary>
/// Builds a sandbox's mount tree: the root from the Gofer (under a tmpfs overlay by default),
/// /proc, /sys, /dev (with /dev/pts and /dev/shm), /tmp, then the options' extra mounts.
/// </summary>
internal sealed class SandboxFileSystems : IDisposable
{
    private readonly GoferConnection gofer;

    private SandboxFileSystems(GoferConnection gofer) => this.gofer = gofer;

    /// <summary>Starts the Gofer; it comes up while the caller does other work (the first request waits for it).</summary>
    public static SandboxFileSystems Start(SandboxOptions options, ILogger logger)
    {
        // The Gofer serves the root and every bind mount; nothing else of the host is reachable.
        var roots = new List<GoferRoot> { new(Path.GetFullPath(options.RootFs), options.RootFsMode != RootFsMode.ReadWrite) };
        var binds = options.Mounts.Where(m => m.Type == "bind").ToList();
        foreach (var bind in binds)
        {
            roots.Add(new GoferRoot(Path.GetFullPath(bind.Source), bind.ReadOnly));
        }

        return new SandboxFileSystems(GoferLauncher.Start(roots, null, logger));
    }

    /// <summary>Mounts the root: the Gofer's, read-only under a tmpfs overlay by default.</summary>
    public void MountRoot(SandboxOptions options, VirtualFileSystem vfs, MemoryFile memory)
    {
        var lower = new GoferFileSystem(gofer, 0, memory, readOnly: options.RootFsMode != RootFsMode.ReadWrite);
        IFileSystem root = options.RootFsMode == RootFsMode.Overlay
            ? new OverlayFileSystem(lower, new TmpfsFileSystem(memory))
            : lower;
        vfs.MountRoot(root, options.RootFs, readOnly: options.RootFsMode == RootFsMode.ReadOnly);
    }

    /// <summary>The mounts that need the kernel (procfs) and the options' extra mounts.</summary>
    public void MountStandard(Kernel.Kernel kernel, SandboxOptions options, SentryServices services, ILogger logger)
    {
        var vfs = kernel.Vfs;
        var memory = kernel.MemoryFile;
        MountOn(vfs, "/proc", new ProcFileSystem(kernel), "proc", false, logger);
        MountOn(vfs, "/sys", new SysFileSystem(Environment.ProcessorCount), "sysfs", true, logger);
        MountOn(vfs, "/dev", DevDirectory.CreateFileSystem(memory), "devtmpfs", false, logger);
        var pts = new DevPtsFileSystem(kernel);
        MountOn(vfs, "/dev/pts", pts, "devpts", false, logger);
        pts.RegisterDevices(vfs.Devices);
        MountOn(vfs, "/dev/shm", new TmpfsFileSystem(memory), "shm", false, logger);
        MountOn(vfs, "/tmp", new TmpfsFileSystem(memory), "tmpfs", false, logger);
        foreach (var (major, minor) in CharacterDevices.Known.Select(d => (d.Major, d.Minor)))
        {
            uint ma = major, mi = minor;
            vfs.Devices.Register(ma, mi, (flags, inode) =>
                CharacterDevices.TryOpen(ma, mi, flags, inode, out var ops) ? ops : throw ErrnoException.Of(Errno.ENXIO));
        }

        int bindIndex = 1;
        foreach (var mount in options.Mounts)
        {
            IFileSystem fileSystem;
            if (mount.Type == "bind")
            {
                fileSystem = new GoferFileSystem(gofer, bindIndex++, memory, mount.ReadOnly);
            }
            else if (mount.Type == "tmpfs")
            {
                fileSystem = new TmpfsFileSystem(memory, TmpfsOptions.Parse(mount.Data));
            }
            else if (services.FileSystemTypes.TryGetValue(mount.Type, out var type))
            {
                fileSystem = type.Mount(new FileSystemMountContext(mount.Source, mount.ReadOnly, mount.Data, memory, services.Services));
            }
            else
            {
                throw new SandboxConfigurationException($"SandboxOptions.Mounts: no filesystem type '{mount.Type}' for '{mount.Target}' (registered: bind, tmpfs{string.Concat(services.FileSystemTypes.Keys.Select(k => ", " + k))}).");
            }

            MountOn(vfs, mount.Target, fileSystem, mount.Source, mount.ReadOnly, logger, create: true);
        }
    }

    private static void MountOn(VirtualFileSystem vfs, string target, IFileSystem fileSystem, string source, bool readOnly, ILogger logger, bool create = true)
    {
        var root = vfs.RootPath;
        var context = new PathContext(Credentials.ForUser(0, 0), root, root, null);
        VfsPath at;
        try
        {
            at = vfs.Resolve(context, target, followFinal: true).Path;
        }
        catch (ErrnoException e) when (e.Errno == Errno.ENOENT && create)
        {
            // A missing mount point is made in the (writable) root; a read-only root cannot have it.
            try
            {
                // Like mkdir -p: every missing directory on the way is made.
                string prefix = "";
                foreach (var part in target.Split('/', StringSplitOptions.RemoveEmptyEntries))
                {
                    prefix += "/" + part;
                    try
                    {
                        vfs.MakeDirectory(0, context, prefix, (FileMode)0x1ED);
                    }
                    catch (ErrnoException exists) when (exists.Errno == Errno.EEXIST)
                    {
                    }
                }

                at = vfs.Resolve(context, target, followFinal: true).Path;
            }
            catch (ErrnoException inner)
            {
                logger.LogWarning("cannot mount {Type} on {Target}: the mount point is missing and cannot be made ({Errno})", fileSystem.TypeName, target, inner.Errno);
                return;
            }
        }

        vfs.MountAt(at, fileSystem, source, readOnly);
    }

    public void Dispose() => gofer.Dispose();
}
