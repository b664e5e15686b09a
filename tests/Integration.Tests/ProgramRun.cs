using System.Diagnostics;

namespace AppKernel.Integration.Tests;

/// <summary>What a program printed and how it ended.</summary>
internal sealed record ProgramRun(byte[] Output, string Error, int Status)
{
    public string Text => System.Text.Encoding.UTF8.GetString(Output);

    /// <summary>Runs the program natively, from "/", with the given environment only.</summary>
    public static ProgramRun Native(string path, IReadOnlyList<string> arguments, IReadOnlyDictionary<string, string>? environment = null)
    {
        var start = new ProcessStartInfo(path, arguments)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            WorkingDirectory = "/",
        };
        start.Environment.Clear();
        foreach (var (key, value) in environment ?? Sandboxes.DefaultEnvironment)
        {
            start.Environment[key] = value;
        }

        using var process = Process.Start(start)!;
        process.StandardInput.Close();
        var output = new MemoryStream();
        var copy = process.StandardOutput.BaseStream.CopyToAsync(output);
        string error = process.StandardError.ReadToEnd();
        copy.Wait();
        process.WaitForExit();
        // A shell reports death by signal N as 128 + N, as the runner does.
        int status = process.ExitCode;
        return new ProgramRun(output.ToArray(), error, status);
    }
}
