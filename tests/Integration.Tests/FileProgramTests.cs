namespace AppKernel.Integration.Tests;

/// <summary>
/// File-heavy host programs in a fresh directory under /tmp: cp -a, mv, rm -r, ln -s, find, du,
/// tar + gzip round trips, and Python's tempfile, shutil, pathlib, os.walk, flock and lockf, with
/// the same output and status as native.
/// </summary>
[TestClass]
public sealed class FileProgramTests
{
    private const string Coreutils = """
        set -e
        d=$(mktemp -d /tmp/hostXXXXXX)
        cd "$d"
        mkdir -p src/a/b src/e
        echo one > src/a/f1
        printf 'two\n' > src/a/b/f2
        seq 1 20000 > src/big
        ln -s f1 src/a/link
        ln src/a/f1 src/a/hard
        chmod 640 src/a/f1
        chmod 750 src/e
        cp -a src dst
        find dst | sort
        find dst -type l -printf '%p -> %l\n'
        find dst -name 'f*' -type f | sort
        for f in $(find dst | sort); do stat -c '%n %a %F %h' "$f"; done
        for f in $(find dst -type f | sort); do stat -c '%n %s' "$f"; done
        cmp src/big dst/big && echo cp-same
        mv dst moved
        mv moved/a/b moved/b2
        ls moved moved/a
        ln -s moved/a/f1 top
        readlink top
        cat top
        find moved -type f -exec du -b {} + | sort -k2
        du -sb moved/big
        tar -czf t.tgz moved
        mkdir out
        tar -xzf t.tgz -C out
        diff -r moved out/moved && echo tar-round-trip-ok
        tar -tzf t.tgz | sort
        gzip -k src/big
        gunzip -c src/big.gz | cmp - src/big && echo gzip-ok
        rm -r moved out
        ls
        rm -rf src t.tgz top
        cd /
        rmdir "$d"
        echo done
        """;

    private const string PythonFiles = """
        import fcntl, os, pathlib, shutil, sys, tempfile
        with tempfile.TemporaryDirectory() as d:
            p = pathlib.Path(d)
            (p / "src" / "a" / "b").mkdir(parents=True)
            (p / "src" / "a" / "f1").write_text("one")
            (p / "src" / "a" / "b" / "f2").write_text("two" * 1000)
            os.symlink("f1", p / "src" / "a" / "link")
            shutil.copytree(p / "src", p / "dst", symlinks=True)
            print(sorted(str(x.relative_to(p)) for x in p.rglob("*")))
            print(sorted(str(x.relative_to(p)) for x in p.rglob("f*")))
            for root, dirs, files in os.walk(p / "dst"):
                print(os.path.relpath(root, p), sorted(dirs), sorted(files))
            print(os.readlink(p / "dst" / "a" / "link"), (p / "dst" / "a" / "b" / "f2").stat().st_size)
            shutil.copy2(p / "src" / "a" / "b" / "f2", p / "copy")
            print((p / "copy").read_text() == "two" * 1000)
            with open(p / "lock", "w") as f:
                fcntl.flock(f, fcntl.LOCK_EX)
                with open(p / "lock") as g:
                    try:
                        fcntl.flock(g, fcntl.LOCK_SH | fcntl.LOCK_NB)
                        print("second flock taken")
                    except BlockingIOError:
                        print("second flock blocked")
                fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB, 10, 0)
                sys.stdout.flush()
                pid = os.fork()
                if pid == 0:
                    with open(p / "lock", "r+") as h:
                        try:
                            fcntl.lockf(h, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, 5)
                            print("child lockf taken")
                        except OSError as e:
                            print("child lockf:", e.errno == 11 or e.errno == 13)
                    sys.stdout.flush()
                    os._exit(0)
                os.waitpid(pid, 0)
                fcntl.flock(f, fcntl.LOCK_UN)
            shutil.move(str(p / "dst"), str(p / "moved"))
            shutil.rmtree(p / "moved")
            print(sorted(os.listdir(p)))
        print("done")
        """;

    [TestMethod]
    [DynamicData(nameof(Sandboxes.Platforms), typeof(Sandboxes))]
    public async Task CoreutilsTarAndGzipInTmp(string platform)
    {
        foreach (string tool in new[] { "/usr/bin/tar", "/usr/bin/gzip", "/usr/bin/find" })
        {
            if (!File.Exists(tool) && !File.Exists("/bin/" + Path.GetFileName(tool)))
            {
                Assert.Inconclusive($"{tool} is not installed on this machine");
            }
        }

        var native = ProgramRun.Native("/bin/sh", ["-c", Coreutils], Sandboxes.DefaultEnvironment);
        var sandboxed = await Sandboxes.Run(platform, "/bin/sh", ["-c", Coreutils]);
        Assert.AreEqual(0, native.Status, native.Error);
        Assert.AreEqual(native.Text, sandboxed.Text, $"stdout differs; sandbox stderr: {sandboxed.Error}");
        Assert.AreEqual(native.Status, sandboxed.Status, sandboxed.Error);
    }

    [TestMethod]
    [DynamicData(nameof(Sandboxes.Platforms), typeof(Sandboxes))]
    public async Task PythonTempfileShutilPathlibWalkAndLocks(string platform)
    {
        string? python = new[] { "/usr/bin/python3", "/usr/local/bin/python3" }.FirstOrDefault(File.Exists);
        if (python is null)
        {
            Assert.Inconclusive("python3 is not installed on this machine");
        }

        var native = ProgramRun.Native(python, ["-c", PythonFiles], Sandboxes.DefaultEnvironment);
        var sandboxed = await Sandboxes.Run(platform, python, ["-c", PythonFiles]);
        Assert.AreEqual(0, native.Status, native.Error);
        Assert.AreEqual(native.Text, sandboxed.Text, $"stdout differs; sandbox stderr: {sandboxed.Error}");
        Assert.AreEqual(native.Status, sandboxed.Status, sandboxed.Error);
    }
}
