using System.Text;
using AppKernel.Syscalls;

namespace AppKernel.Sentry.Syscalls;

/// <summary>Renders the compatibility page docs/syscalls.md from the syscall table's declarations.</summary>
internal static class SyscallDocument
{
    public static string Render(ISyscallTable table)
    {
        var entries = table.Entries.Where(e => !e.Name.StartsWith("syscall_", StringComparison.Ordinal)).ToArray();
        var b = new StringBuilder();
        b.Append("# Linux x86-64 syscalls in AppKernel\n\n");
        b.Append("Generated from the Sentry's syscall table (the `[Syscall]` declarations); a test fails when this page is stale.\n");
        b.Append("Regenerate with `APPKERNEL_UPDATE_DOCS=1 dotnet test --project tests/Sentry.Tests`.\n\n");
        foreach (SupportLevel level in Enum.GetValues<SupportLevel>())
        {
            b.Append($"- {level}: {entries.Count(e => e.Support == level)}\n");
        }

        b.Append("\nUnimplemented syscalls return ENOSYS; they are never passed to the host.\n\n");
        b.Append("| # | Name | Support | Note |\n| ---: | --- | --- | --- |\n");
        foreach (var e in entries)
        {
            b.Append($"| {e.Number} | {e.Name} | {e.Support} | {e.Note.Replace("|", "\\|")} |\n");
        }

        return b.ToString();
    }
}
