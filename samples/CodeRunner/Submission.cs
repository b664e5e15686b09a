using System.Text.Json.Serialization;

namespace AppKernel.Samples.CodeRunner;

/// <summary>A program to judge: its language, its source and what it reads on stdin.</summary>
public sealed record Submission
{
    /// <summary><c>c</c> (compiled with gcc inside a sandbox), <c>python</c> or <c>sh</c>.</summary>
    [JsonPropertyName("language")]
    public required string Language { get; init; }

    /// <summary>The source text.</summary>
    [JsonPropertyName("source")]
    public required string Source { get; init; }

    /// <summary>What the program reads on stdin (empty by default).</summary>
    [JsonPropertyName("stdin")]
    public string Stdin { get; init; } = "";
}

/// <summary>How a submission ran, as JSON: <c>{stdout, stderr, exitCode, signal, timedOut, limit, cpuMs, maxRssBytes}</c> (and <c>stage</c>).</summary>
public sealed record Verdict
{
    /// <summary>What the program wrote on stdout (at most the output limit).</summary>
    [JsonPropertyName("stdout")]
    public required string Stdout { get; init; }

    /// <summary>What it wrote on stderr (for a compile error: the compiler's messages).</summary>
    [JsonPropertyName("stderr")]
    public required string Stderr { get; init; }

    /// <summary>The exit code, or null when a signal ended it.</summary>
    [JsonPropertyName("exitCode")]
    public int? ExitCode { get; init; }

    /// <summary>The signal that ended it, or null when it exited.</summary>
    [JsonPropertyName("signal")]
    public int? Signal { get; init; }

    /// <summary>Whether it ran out of time: the wall-clock or the CPU-time limit.</summary>
    [JsonPropertyName("timedOut")]
    public bool TimedOut { get; init; }

    /// <summary>The first limit hit: <c>wall</c>, <c>cpu</c>, <c>memory</c>, <c>output</c>, <c>tasks</c>, or null.</summary>
    [JsonPropertyName("limit")]
    public string? Limit { get; init; }

    /// <summary>CPU time, user plus system, in milliseconds (the program and the children it reaped).</summary>
    [JsonPropertyName("cpuMs")]
    public long CpuMs { get; init; }

    /// <summary>Peak resident memory in bytes (ru_maxrss).</summary>
    [JsonPropertyName("maxRssBytes")]
    public long MaxRssBytes { get; init; }

    /// <summary><c>compile</c> when the C compiler failed (the fields describe gcc), else <c>run</c>.</summary>
    [JsonPropertyName("stage")]
    public string Stage { get; init; } = "run";
}
