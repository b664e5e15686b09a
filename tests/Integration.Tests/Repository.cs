namespace AppKernel.Integration.Tests;

/// <summary>Where the repository is, found from the test binaries (no machine path is baked in).</summary>
internal static class Repository
{
    public static string Root { get; } = Find();

    public static string Artifacts => Path.Combine(Root, "artifacts");

    private static string Find()
    {
        var directory = new DirectoryInfo(AppContext.BaseDirectory);
        while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "Sdk.sln")))
        {
            directory = directory.Parent;
        }

        return directory?.FullName ?? throw new InvalidOperationException("Sdk.sln not found above the test binaries");
    }
}
