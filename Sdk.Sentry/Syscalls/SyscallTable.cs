using System.Reflection;
using AppKernel.Sentry.Abi;
using AppKernel.Syscalls;

namespace AppKernel.Sentry.Syscalls;

/// <summary>
/// The x86-64 syscall table: every number Linux defines has an entry (unimplemented ones
/// return ENOSYS and are listed as such), built-in handlers come from <see cref="SyscallAttribute"/>
/// declarations, and plugins may add or replace entries (at most one plugin per syscall).
/// </summary>
internal sealed class SyscallTable : ISyscallTable
{
    public const string SentrySource = "Sentry";

    private readonly SyscallEntry[] entries;

    private SyscallTable(SyscallEntry[] entries) => this.entries = entries;

    public IReadOnlyList<SyscallEntry> Entries => entries;

    public bool TryGetEntry(int number, out SyscallEntry entry)
    {
        if ((uint)number < (uint)entries.Length)
        {
            entry = entries[number];
            return true;
        }

        entry = null!;
        return false;
    }

    /// <summary>Builds the table from the Sentry's declared handlers and the plugins' registrations.</summary>
    public static SyscallTable Build(IEnumerable<(ISyscallHandler Handler, string Source)> pluginHandlers)
    {
        var list = new List<SyscallEntry>();
        int count = SyscallNames.Count;
        var table = new SyscallEntry?[count];

        // Handlers live in the *Syscalls classes of this namespace (one per family); scanning only
        // those keeps composition fast.
        var families = typeof(SyscallTable).Assembly.GetTypes()
            .Where(t => t.Namespace == typeof(SyscallTable).Namespace && t.Name.EndsWith("Syscalls", StringComparison.Ordinal));
        foreach (var method in families.SelectMany(t => t.GetMethods(BindingFlags.Static | BindingFlags.Public | BindingFlags.NonPublic)))
        {
            foreach (var attribute in method.GetCustomAttributes<SyscallAttribute>())
            {
                string name = SyscallNames.Get(attribute.Number)
                    ?? throw new InvalidOperationException($"{method.DeclaringType}.{method.Name} declares unknown syscall {attribute.Number}");
                if (table[attribute.Number] is { } existing)
                {
                    throw new InvalidOperationException($"syscall {name} ({attribute.Number}) is declared twice in the Sentry");
                }

                var handler = method.CreateDelegate<SyscallHandler>();
                table[attribute.Number] = new SyscallEntry(attribute.Number, name, attribute.Support, attribute.Note, handler, SentrySource);
            }
        }

        var replacedBy = new Dictionary<int, string>();
        foreach (var (plugin, source) in pluginHandlers)
        {
            int number = plugin.Number;
            if (number < 0 || number >= 4096)
            {
                throw new SandboxConfigurationException($"Plugin '{source}' registers a handler for syscall number {number}, which is out of range.");
            }

            if (replacedBy.TryGetValue(number, out var other))
            {
                throw new SandboxConfigurationException(
                    $"Syscall {plugin.Name} ({number}) is replaced by both '{other}' and '{source}'; at most one plugin may replace a syscall.");
            }

            replacedBy[number] = source;
            if (number >= table.Length)
            {
                Array.Resize(ref table, number + 1);
            }

            table[number] = new SyscallEntry(number, plugin.Name, plugin.Support, $"provided by {source}", plugin.Handle, source);
        }

        for (int number = 0; number < table.Length; number++)
        {
            table[number] ??= new SyscallEntry(
                number,
                SyscallNames.Get(number) ?? $"syscall_{number}",
                SupportLevel.Unimplemented,
                "",
                Unimplemented,
                SentrySource);
            list.Add(table[number]!);
        }

        return new SyscallTable([.. list]);
    }

    /// <summary>Handler of every syscall the Sentry does not implement: ENOSYS, never the host.</summary>
    public static SyscallResult Unimplemented(ISyscallContext context) => SyscallResult.Error(Errno.ENOSYS);
}
