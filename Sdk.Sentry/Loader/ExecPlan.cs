using AppKernel.Sentry.Vfs;

namespace AppKernel.Sentry.Loader;

/// <summary>What execve checked and opened before the point of no return.</summary>
internal sealed class ExecPlan : IDisposable
{
    public required string Path { get; init; }

    public required List<string> Arguments { get; init; }

    public required IReadOnlyList<string> Environment { get; init; }

    public required FileDescription Executable { get; init; }

    public required ElfFile Elf { get; init; }

    public FileDescription? Interpreter { get; init; }

    public ElfFile? InterpreterElf { get; init; }

    public void Dispose()
    {
        Executable.Release();
        Interpreter?.Release();
    }
}
