using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Logging.Console;

namespace AppKernel.Runner;

/// <summary>
/// The runner's log format on stderr: strace lines as they are ("[pid 1] read(...) = 3"),
/// everything else as "appkernel: level: message", like a command-line tool.
/// </summary>
internal sealed class PlainConsoleFormatter() : ConsoleFormatter(FormatterName)
{
    public const string FormatterName = "appkernel";

    public override void Write<TState>(in LogEntry<TState> logEntry, Microsoft.Extensions.Logging.IExternalScopeProvider? scopeProvider, TextWriter textWriter)
    {
        string message = logEntry.Formatter(logEntry.State, logEntry.Exception);
        if (logEntry.Category == "AppKernel.Strace")
        {
            textWriter.WriteLine(message);
            return;
        }

        string level = logEntry.LogLevel switch
        {
            LogLevel.Critical or LogLevel.Error => "error",
            LogLevel.Warning => "warning",
            _ => "info",
        };
        textWriter.WriteLine($"appkernel: {level}: {message}");
    }
}
