namespace AppKernel.Integration.Tests;

/// <summary>
/// A fixture that takes a directory argument, run natively on a fresh host directory and in the
/// sandbox on another one bound read-write at /mnt/data (served by the Gofer), with the same
/// stdout and a zero status required of both. Disposing removes both directories.
/// </summary>
internal sealed class BoundDirectoryRun : IDisposable
{
    private readonly string nativeDirectory;

    private BoundDirectoryRun(string prefix)
    {
        nativeDirectory = Directory.CreateTempSubdirectory(prefix).FullName;
        BoundDirectory = Directory.CreateTempSubdirectory(prefix).FullName;
    }

    /// <summary>The host directory the sandbox saw at /mnt/data, for checks after the run.</summary>
    public string BoundDirectory { get; }

    public static async Task<BoundDirectoryRun> CompareWithNative(string platform, string fixture, string prefix)
    {
        var directories = new BoundDirectoryRun(prefix);
        try
        {
            string path = Fixtures.Path(fixture);
            var native = ProgramRun.Native(path, [directories.nativeDirectory]);
            Assert.AreEqual(0, native.Status, native.Error);
            var run = await Sandboxes.Run(platform, path, ["/mnt/data"],
                o => o.Mounts.Add(new MountSpec { Type = "bind", Source = directories.BoundDirectory, Target = "/mnt/data" }));
            Assert.AreEqual(native.Text, run.Text, run.Error);
            Assert.AreEqual(0, run.Status, run.Error);
            return directories;
        }
        catch
        {
            directories.Dispose();
            throw;
        }
    }

    public void Dispose()
    {
        Directory.Delete(nativeDirectory, recursive: true);
        Directory.Delete(BoundDirectory, recursive: true);
    }
}
