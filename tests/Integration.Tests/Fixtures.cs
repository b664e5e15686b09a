using System.Diagnostics;

namespace AppKernel.Integration.Tests;

/// <summary>
/// The C fixture programs of tests/fixtures, built with gcc at test time (dynamic and static)
/// into artifacts/fixtures, which the sandbox sees through its root like any host file.
/// </summary>
internal static class Fixtures
{
    private static readonly object Gate = new();
    private static readonly HashSet<string> Built = new();

    public static string Directory => System.IO.Path.Combine(Repository.Artifacts, "fixtures");

    /// <summary>The path of fixture <paramref name="name"/> ("fileio" or "fileio.static"), built if needed.</summary>
    public static string Path(string name)
    {
        string baseName = name.Replace(".static-pie", "").Replace(".static", "").Replace(".badinterp", "");
        string source = System.IO.Path.Combine(Repository.Root, "tests", "fixtures", baseName + ".c");
        string output = System.IO.Path.Combine(Directory, name);
        lock (Gate)
        {
            if (Built.Contains(name))
            {
                return output;
            }

            System.IO.Directory.CreateDirectory(Directory);
            if (!File.Exists(output) || File.GetLastWriteTimeUtc(output) < File.GetLastWriteTimeUtc(source))
            {
                var arguments = new List<string> { "-O2", "-w", "-Werror=implicit-function-declaration", "-pthread", "-o", output, source };
                if (name.EndsWith(".static-pie", StringComparison.Ordinal))
                {
                    arguments.InsertRange(0, ["-static-pie", "-fPIE"]);
                }
                else if (name.EndsWith(".static", StringComparison.Ordinal))
                {
                    arguments.Insert(0, "-static");
                }
                else if (name.EndsWith(".badinterp", StringComparison.Ordinal))
                {
                    // A dynamic executable whose interpreter does not exist: execve gives ENOENT.
                    arguments.Insert(0, "-Wl,--dynamic-linker=/lib64/appkernel-no-such-ld.so");
                }

                var gcc = Process.Start(new ProcessStartInfo("gcc", arguments) { RedirectStandardError = true })!;
                string errors = gcc.StandardError.ReadToEnd();
                gcc.WaitForExit();
                if (gcc.ExitCode != 0)
                {
                    throw new InvalidOperationException($"gcc failed for {name}: {errors}");
                }
            }

            Built.Add(name);
            return output;
        }
    }
}
