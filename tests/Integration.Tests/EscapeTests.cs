using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;

namespace AppKernel.Integration.Tests;

/// <summary>
/// A program cannot reach a host file outside the sandbox's root (tests/fixtures/escape.c). Each
/// test builds a directory holding <c>rootfs/</c> (a small tree with the static fixture as
/// /bin/escape and symlinks planted by the test) and <c>canary</c> beside it, runs the fixture
/// with that rootfs in each mode, and checks both the answers Linux gives inside a root it cannot
/// leave and, on the host, that the canary was neither read nor written and that nothing appeared
/// outside the rootfs. Not differential: natively, as root, several of these do escape a chroot.
/// </summary>
[TestClass]
public sealed class EscapeTests
{
    private const string Secret = "CANARY-SECRET\n";

    private const string Escape = """
        canary is outside: 1
        ../../../canary: -1 ENOENT
        /../canary: -1 ENOENT
        /../../..HOST/canary: -1 ENOENT
        /../../.. is /: 1
        sub/deeper: ../../../../canary: -1 ENOENT
        ../../../canary (write): -1 ENOENT
        symlink abs: 0
        made abs -> HOST/canary: -1 ENOENT
        made abs -> HOST/canary (write): -1 ENOENT
        symlink abs dots: 0
        made abs -> /../../../../canary: -1 ENOENT
        symlink rel: 0
        made rel -> ../../../../../../../canary: -1 ENOENT
        made rel -> ../../../../../../../canary (write): -1 ENOENT
        symlink updir: 0
        made up -> ../../../../../.. then canary: -1 ENOENT
        symlink hostdir: 0
        made hostdir -> HOST then canary: -1 ENOENT
        create through made abs: ENOENT
        planted /planted-abs -> HOST/canary: -1 ENOENT
        planted /planted-rel -> ../canary: -1 ENOENT
        planted /sub/planted-rel2 -> ../../canary: -1 ENOENT
        planted /planted-dirabs -> HOST, then canary: -1 ENOENT
        planted /planted-dirrel -> .., then canary: -1 ENOENT
        planted /planted-dirrel -> .., then data/file.txt: "inside"
        planted /planted-abs (write): -1 ENOENT
        planted /planted-rel (write): -1 ENOENT
        create through planted abs: ENOENT
        readlink /planted-abs is the host's text: 1
        readlink /proc/self/root: /
        /proc/self/root/../canary: -1 ENOENT
        /proc/self/root/../../../canary: -1 ENOENT
        /proc/self/root/HOST/canary: -1 ENOENT
        /proc/1/root/../canary: -1 ENOENT
        /proc/1/root/../../../../canary: -1 ENOENT
        /proc/1/cwd/../../canary: -1 ENOENT
        /proc/self/cwd/../../../canary: -1 ENOENT
        /proc/1/root/data/file.txt: "inside"
        openat(/proc/self/root fd, ../../canary): -1 ENOENT
        /proc/self/fd/ROOT/../../canary: -1 ENOENT
        /proc/1/root/../canary (write): -1 ENOENT
        openat(O_PATH /sub, ../../../canary): -1 ENOENT
        linkat(O_PATH /, AT_EMPTY_PATH) into /tmp: -1 EXDEV
        linkat(O_PATH /data/file.txt, AT_EMPTY_PATH) into /tmp: -1 EXDEV
        linkat(/proc/self/fd/N, AT_SYMLINK_FOLLOW) into /tmp: -1 EXDEV
        linkat(O_PATH planted symlink) into /tmp: -1 EXDEV
        symlink /tmp/made -> HOST/canary: 0
        linkat(O_PATH /tmp/made, AT_EMPTY_PATH) to /tmp/made2: 0
        /tmp/made2 (hard link of the symlink): -1 ENOENT
        linkat(/proc/self/fd/N of the symlink, AT_SYMLINK_FOLLOW) to /tmp/made3: 0
        /tmp/made3: -1 ENOENT
        /proc/self/fd/N of the symlink: -1 ELOOP
        rename race: 3000 walks, canary reached 0, ENOENT every time, other 0
        host swap: canary reached 0, inside or ENOENT every time, other 0
        chroot /sub: 0
        chdir /: 0
        chdir ../../../..: 0
        getcwd: /
        in /sub: 1
        chroot: ../../canary: -1 ENOENT
        chroot deeper (cwd left outside): 0
        chdir ../../../../..: 0
        outside the inner root: canary: -1 ENOENT
        outside the inner root: data/file.txt: "inside"
        chroot .: 0
        /data/file.txt: "inside"
        /../../canary: -1 ENOENT
        ..HOST/canary: -1 ENOENT
        escapes: 0

        """;

    public static IEnumerable<object[]> PlatformsAndModes =>
        Sandboxes.Platforms.SelectMany(p => new[] { RootFsMode.ReadOnly, RootFsMode.Overlay, RootFsMode.ReadWrite }.Select(m => new object[] { p[0], m }));

    public TestContext TestContext { get; set; } = null!;

    [TestMethod]
    [DynamicData(nameof(PlatformsAndModes))]
    public async Task EscapesFail(string platform, RootFsMode mode)
    {
        using var tree = new Tree();
        // Links and the rename race go where the program can write: the root's /w, or /tmp when the root is read-only.
        string linkDirectory = mode == RootFsMode.ReadOnly ? "/tmp" : "/w";
        using var stop = new CancellationTokenSource();
        var swapper = Task.Run(() => tree.SwapWhileRunning(stop.Token));
        ProgramRun run;
        try
        {
            run = await Run(platform, tree, mode, "escape", tree.Directory, linkDirectory);
        }
        finally
        {
            stop.Cancel();
        }

        int swaps = await swapper;
        TestContext.WriteLine($"host passes over the swapped names during the run: {swaps}; the program's counts: {run.Error.Trim()}");
        Assert.AreEqual(Escape, run.Text, run.Error);
        Assert.AreEqual(0, run.Status, run.Error);
        tree.AssertCanaryUntouched();
    }

    [TestMethod]
    [DynamicData(nameof(Sandboxes.Platforms), typeof(Sandboxes))]
    public async Task AReadOnlyRootIsUnchangedByWritesEverywhere(string platform)
    {
        using var tree = new Tree();
        string before = tree.Hash();
        var run = await Run(platform, tree, RootFsMode.ReadOnly, "writeall");
        Assert.AreEqual("writeall: many attempts, unexpected 0\n", run.Text, run.Error);
        Assert.AreEqual(0, run.Status);
        Assert.AreEqual(before, tree.Hash(), "the host tree changed");
        tree.AssertCanaryUntouched();
    }

    [TestMethod]
    [DynamicData(nameof(Sandboxes.Platforms), typeof(Sandboxes))]
    public async Task AnOverlayRootKeepsWritesInMemory(string platform)
    {
        using var tree = new Tree();
        string before = tree.Hash();
        var run = await Run(platform, tree, RootFsMode.Overlay, "writeall");
        StringAssert.Contains(run.Text, "writeall: many attempts", run.Error);
        Assert.AreEqual(0, run.Status);
        Assert.AreEqual(before, tree.Hash(), "an overlay write reached the host");
        tree.AssertCanaryUntouched();
    }

    [TestMethod]
    [DynamicData(nameof(Sandboxes.Platforms), typeof(Sandboxes))]
    public async Task AReadWriteRootTakesWritesToTheHost(string platform)
    {
        using var tree = new Tree();
        string w = Path.Combine(tree.Root, "w");
        File.WriteAllText(Path.Combine(w, "append.txt"), "first\n");
        File.WriteAllText(Path.Combine(w, "old.txt"), "old\n");
        File.WriteAllText(Path.Combine(w, "gone.txt"), "gone\n");
        File.WriteAllText(Path.Combine(w, "trunc.txt"), "truncate me\n");
        Directory.CreateDirectory(Path.Combine(w, "emptydir"));
        var run = await Run(platform, tree, RootFsMode.ReadWrite, "rwops");
        Assert.AreEqual("""
            create /w/new.txt: 0
            write: 15
            append: 5
            rename /w/old.txt /w/renamed.txt: 0
            chmod /w/renamed.txt 0600: 0
            unlink /w/gone.txt: 0
            mkdir /w/newdir: 0
            rmdir /w/emptydir: 0
            symlink new.txt /w/newlink: 0
            link /w/new.txt /w/hard.txt: 0
            truncate /w/trunc.txt 3: 0

            """, run.Text, run.Error);
        Assert.AreEqual("written inside\n", File.ReadAllText(Path.Combine(w, "new.txt")));
        Assert.AreEqual(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead, File.GetUnixFileMode(Path.Combine(w, "new.txt")));
        Assert.AreEqual("first\nmore\n", File.ReadAllText(Path.Combine(w, "append.txt")));
        Assert.IsFalse(File.Exists(Path.Combine(w, "old.txt")));
        Assert.AreEqual("old\n", File.ReadAllText(Path.Combine(w, "renamed.txt")));
        Assert.AreEqual(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(w, "renamed.txt")));
        Assert.IsFalse(File.Exists(Path.Combine(w, "gone.txt")));
        Assert.IsTrue(Directory.Exists(Path.Combine(w, "newdir")));
        Assert.IsFalse(Directory.Exists(Path.Combine(w, "emptydir")));
        Assert.AreEqual("new.txt", new FileInfo(Path.Combine(w, "newlink")).LinkTarget);
        Assert.AreEqual("written inside\n", File.ReadAllText(Path.Combine(w, "hard.txt")));
        Assert.AreEqual(new FileInfo(Path.Combine(w, "new.txt")).Length, new FileInfo(Path.Combine(w, "hard.txt")).Length);
        Assert.AreEqual("tru", File.ReadAllText(Path.Combine(w, "trunc.txt")));
        tree.AssertCanaryUntouched();
    }

    private static Task<ProgramRun> Run(string platform, Tree tree, RootFsMode mode, params string[] arguments) =>
        Sandboxes.Run(platform, "/bin/escape", arguments, o =>
        {
            o.RootFs = tree.Root;
            o.RootFsMode = mode;
            o.WorkingDirectory = "/";
        }, bindArtifacts: false);

    [DllImport("libc", EntryPoint = "renameat2", SetLastError = true)]
    private static extern int RenameAt2(int oldDirectory, [MarshalAs(UnmanagedType.LPUTF8Str)] string oldPath, int newDirectory, [MarshalAs(UnmanagedType.LPUTF8Str)] string newPath, uint flags);

    /// <summary>A temporary directory holding rootfs/ and the canary beside it.</summary>
    private sealed class Tree : IDisposable
    {
        private const int AtFdCwd = -100;
        private const uint RenameExchange = 2;

        public Tree()
        {
            Directory = System.IO.Directory.CreateTempSubdirectory("appkernel-escape-").FullName;
            Root = Path.Combine(Directory, "rootfs");
            foreach (string d in new[] { "proc", "sys", "dev", "tmp", "bin", "sub/deeper", "w", "data", "swapdir" })
            {
                System.IO.Directory.CreateDirectory(Path.Combine(Root, d));
            }

            File.WriteAllText(Canary, Secret);
            File.WriteAllText(Path.Combine(Root, "data", "file.txt"), "inside\n");
            File.WriteAllText(Path.Combine(Root, "swapdir", "canary"), "inside\n");
            File.Copy(Fixtures.Path("escape.static"), Path.Combine(Root, "bin", "escape"));
            File.SetUnixFileMode(Path.Combine(Root, "bin", "escape"), (UnixFileMode)0x1ed);

            // Symlinks planted on the host: absolute (the canary's host path) and relative (../).
            File.CreateSymbolicLink(Path.Combine(Root, "planted-abs"), Canary);
            File.CreateSymbolicLink(Path.Combine(Root, "planted-rel"), "../canary");
            File.CreateSymbolicLink(Path.Combine(Root, "sub", "planted-rel2"), "../../canary");
            File.CreateSymbolicLink(Path.Combine(Root, "planted-dirabs"), Directory);
            File.CreateSymbolicLink(Path.Combine(Root, "planted-dirrel"), "..");

            // What the host swaps in and out while the program walks (each name once, so each
            // lookup reaches the Gofer): /s/N is a symlink to an inside directory, to the host
            // directory (absolute) or to "../.."; /d/N a directory or a symlink to the host directory.
            foreach (string d in new[] { "s", "salt", "d", "dalt" })
            {
                System.IO.Directory.CreateDirectory(Path.Combine(Root, d));
            }

            for (int i = 0; i < SwapCount; i++)
            {
                File.CreateSymbolicLink(Path.Combine(Root, "s", $"{i}"), "../swapdir");
                File.CreateSymbolicLink(Path.Combine(Root, "salt", $"{i}.0"), Directory);
                File.CreateSymbolicLink(Path.Combine(Root, "salt", $"{i}.1"), "../..");
                System.IO.Directory.CreateDirectory(Path.Combine(Root, "d", $"{i}"));
                File.WriteAllText(Path.Combine(Root, "d", $"{i}", "canary"), "inside\n");
                File.CreateSymbolicLink(Path.Combine(Root, "dalt", $"{i}"), Directory);
            }
        }

        private const int SwapCount = 200;

        public string Directory { get; }

        public string Root { get; }

        private string Canary => Path.Combine(Directory, "canary");

        /// <summary>Exchanges the names until cancelled; the number of exchanges made.</summary>
        public int SwapWhileRunning(CancellationToken stop)
        {
            int swaps = 0;
            while (!stop.IsCancellationRequested)
            {
                for (int i = 0; i < SwapCount && !stop.IsCancellationRequested; i++)
                {
                    string alternative = Path.Combine(Root, "salt", $"{i}.{swaps % 2}");
                    Assert.AreEqual(0, RenameAt2(AtFdCwd, Path.Combine(Root, "s", $"{i}"), AtFdCwd, alternative, RenameExchange), "renameat2");
                    Assert.AreEqual(0, RenameAt2(AtFdCwd, Path.Combine(Root, "d", $"{i}"), AtFdCwd, Path.Combine(Root, "dalt", $"{i}"), RenameExchange), "renameat2");
                }

                swaps++;
                Thread.Sleep(1);
            }

            return swaps;
        }

        public void AssertCanaryUntouched()
        {
            Assert.AreEqual(Secret, File.ReadAllText(Canary), "the canary was written");
            CollectionAssert.AreEquivalent(new[] { "canary", "rootfs" }, System.IO.Directory.GetFileSystemEntries(Directory).Select(Path.GetFileName).ToArray(), "something appeared beside the rootfs");
        }

        /// <summary>Names, types, modes, owners, sizes, contents, link targets and mtimes of the whole directory.</summary>
        public string Hash()
        {
            var text = new StringBuilder();
            Describe(Directory, text);
            return Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(text.ToString())));
        }

        /// <summary>Walks without following symlinks (the tree has links to itself and to "..").</summary>
        private void Describe(string directory, StringBuilder text)
        {
            foreach (string path in System.IO.Directory.GetFileSystemEntries(directory).Order(StringComparer.Ordinal))
            {
                var info = new FileInfo(path);
                bool isDirectory = info.LinkTarget is null && info.Attributes.HasFlag(FileAttributes.Directory);
                text.Append(Path.GetRelativePath(Directory, path)).Append(' ')
                    .Append(info.LinkTarget is { } target ? "-> " + target : isDirectory ? "dir" : Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(path))))
                    .Append(' ').Append(info.UnixFileMode).Append(' ').Append(info.LastWriteTimeUtc.Ticks).Append('\n');
                if (isDirectory)
                {
                    Describe(path, text);
                }
            }
        }

        public void Dispose() => System.IO.Directory.Delete(Directory, recursive: true);
    }
}
