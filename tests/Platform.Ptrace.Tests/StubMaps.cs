using System.Globalization;

namespace AppKernel.Platform.Ptrace.Tests;

/// <summary>Reads a stub's host mappings from /proc/PID/maps.</summary>
internal static class StubMaps
{
    public sealed record Mapping(ulong Start, ulong End, string Permissions, string Name);

    /// <summary>Every mapping except [vsyscall], which the host kernel shows in every process and nobody can unmap.</summary>
    public static List<Mapping> Read(int pid)
    {
        var mappings = new List<Mapping>();
        foreach (string line in File.ReadAllLines($"/proc/{pid}/maps"))
        {
            var fields = line.Split(' ', 6, StringSplitOptions.RemoveEmptyEntries);
            var range = fields[0].Split('-');
            var mapping = new Mapping(
                ulong.Parse(range[0], NumberStyles.HexNumber),
                ulong.Parse(range[1], NumberStyles.HexNumber),
                fields[1],
                fields.Length > 5 ? fields[5].Trim() : "");
            if (mapping.Name != "[vsyscall]")
            {
                mappings.Add(mapping);
            }
        }

        return mappings;
    }
}
