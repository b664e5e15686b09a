namespace AppKernel.Integration.Tests;

/// <summary>dash, bash and busybox sh: the same output and status as native for the shell features programs rely on.</summary>
[TestClass]
public sealed class ShellTests
{
    private static readonly (string Name, string Script)[] Scripts =
    [
        ("pipelines", "printf 'b\\na\\nc\\n' | sort | tr a-z A-Z | head -n 2; echo ${PIPESTATUS:-none}"),
        ("subshells", "x=outer; (x=inner; echo \"in $x\"; exit 4); echo \"status $? x=$x\""),
        ("command substitution", "n=$(echo one two three | wc -w); echo \"words: $((n * 2))\"; echo \"$(echo nested $(echo deep))\""),
        ("here-docs", "cat <<EOF\nline $((1+1))\n  indented\nEOF\ncat <<'EOF'\nliteral $HOME\nEOF"),
        ("traps", "trap 'echo on exit' EXIT; trap 'echo got usr1' USR1; kill -USR1 $$; echo after signal"),
        ("set -e", "set -e; echo start; false || echo handled; (false); echo never"),
        ("background jobs", "sleep 0.2 & a=$!; (exit 3) & b=$!; wait $b; echo \"b: $?\"; wait $a; echo \"a: $?\"; wait; echo all done"),
        ("exit statuses", "true; echo $?; false; echo $?; sh -c 'exit 42'; echo $?; sh -c 'kill -TERM $$'; echo $?; ! true; echo $?"),
        ("loops and functions", "f() { echo \"f($1)\"; return $(($1 % 3)); }; i=0; while [ $i -lt 5 ]; do f $i || echo \"  -> $?\"; i=$((i+1)); done"),
        ("redirections", "echo out > /tmp/o; echo err >&2 2>/tmp/e; cat /tmp/o; exec 3>/tmp/fd3; echo three >&3; exec 3>&-; cat /tmp/fd3; ls /nonexistent 2>/dev/null || echo missing"),
    ];

    private static readonly string[] Shells = ["/bin/dash", "/bin/bash", "/bin/busybox"];

    public static IEnumerable<object[]> Cases()
    {
        foreach (var platform in Sandboxes.Platforms)
        {
            foreach (var shell in Shells)
            {
                foreach (var (name, _) in Scripts)
                {
                    yield return [platform[0], shell, name];
                }
            }
        }
    }

    [TestMethod]
    [DynamicData(nameof(Cases))]
    public async Task SameOutputAndStatusAsNative(string platform, string shell, string name)
    {
        if (!File.Exists(shell))
        {
            Assert.Inconclusive($"{shell} is not installed (.ci/run installs busybox-static)");
        }

        string script = Scripts.Single(s => s.Name == name).Script;
        string[] arguments = shell.EndsWith("busybox", StringComparison.Ordinal) ? ["sh", "-c", script] : ["-c", script];
        var native = ProgramRun.Native(shell, arguments);
        var sandboxed = await Sandboxes.Run(platform, shell, arguments);
        Assert.AreEqual(native.Text, sandboxed.Text, $"stdout differs; sandbox stderr: {sandboxed.Error}");
        Assert.AreEqual(native.Status, sandboxed.Status, $"status differs; sandbox stderr: {sandboxed.Error}");
    }
}
