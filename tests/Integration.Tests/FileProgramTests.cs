namespace AppKernel.Integration.Tests;

/// <summary>
/// File-heavy host programs in a fresh directory under /tmp: cp -a, mv, rm -r, ln -s, find, du,
/// tar + gzip round trips, Python's tempfile, shutil, pathlib, os.walk, flock and lockf, sqlite3,
/// and gcc + ld building and running programs, with the same output and status as native.
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

    // sqlite3 on a database in /tmp, in rollback-journal (DELETE) and WAL modes: a transaction of
    // 20000 inserts, a rolled-back delete, an index, a second process reopening the file (WAL's
    // shared-memory file is mmapped and locked with fcntl), VACUUM, and a read-only open.
    private const string Sqlite = """
        set -e
        d=$(mktemp -d /tmp/sqlXXXXXX)
        cd "$d"
        for mode in delete wal; do
          echo "== $mode"
          sqlite3 db <<EOF
        PRAGMA journal_mode=$mode;
        CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, n REAL);
        BEGIN;
        INSERT INTO t(name, n) VALUES ('first', 1.5), ('second', 2.25);
        WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 20000)
          INSERT INTO t(name, n) SELECT 'row' || x, x * 0.5 FROM c;
        COMMIT;
        SELECT count(*), sum(n) FROM t;
        SELECT id, name FROM t WHERE id IN (1, 2, 20002);
        CREATE INDEX byname ON t(name);
        BEGIN;
        DELETE FROM t WHERE id % 2 = 0;
        SELECT count(*) FROM t;
        ROLLBACK;
        SELECT count(*) FROM t;
        UPDATE t SET n = n * 2 WHERE id <= 10;
        SELECT sum(n) FROM t WHERE id <= 10;
        SELECT name FROM t WHERE name LIKE 'row1999%' ORDER BY name;
        PRAGMA integrity_check;
        EOF
          ls
          sqlite3 db "PRAGMA journal_mode; SELECT count(*), max(id) FROM t; DELETE FROM t WHERE id > 100; VACUUM; PRAGMA integrity_check;"
          sqlite3 -readonly db "SELECT count(*) FROM t; PRAGMA page_count;"
          ls
          rm -f db db-wal db-shm db-journal
        done
        cd /
        rmdir "$d"
        echo done
        """;

    // gcc compiles (gcc -c), ar archives, and ld links -- driven by gcc (static archive, shared
    // library with an rpath, -static) and alone (a freestanding _start) -- inside the sandbox, and
    // the programs run there; the objects' checksums show gcc produced the same bytes.
    private const string CompileAndLink = """
        set -e
        d=$(mktemp -d /tmp/ccXXXXXX)
        cd "$d"
        cat > main.c <<'EOF'
        #include <stdio.h>
        #include <string.h>
        int square(int);
        extern const char *greeting;
        int main(int argc, char **argv)
        {
            for (int i = 0; i < 5; i++)
                printf("%d squared is %d\n", i, square(i));
            printf("%s (%zu)\n", greeting, strlen(greeting));
            return argc + 2;
        }
        EOF
        cat > square.c <<'EOF'
        int square(int x) { return x * x; }
        const char *greeting = "linked by ld";
        EOF
        cat > tiny.c <<'EOF'
        static long sys(long n, long a, long b, long c)
        {
            long r;
            __asm__ volatile ("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
            return r;
        }
        static const char message[] = "hello from a program ld linked alone\n";
        void _start(void)
        {
            sys(1, 1, (long)message, sizeof message - 1);
            sys(60, 7, 0, 0);
        }
        EOF
        gcc -O2 -c main.c -o main.o
        gcc -O2 -fPIC -c square.c -o square.o
        ar rcs libsquare.a square.o
        gcc -o prog main.o -L. -lsquare
        ./prog one || echo "status $?"
        gcc -shared -o libsquare.so square.o
        gcc -o prog-shared main.o -L. -lsquare -Wl,-rpath,"$d"
        ./prog-shared || echo "status $?"
        gcc -O2 -fno-pie -fno-stack-protector -fcf-protection=none -c tiny.c -o tiny.o
        ld -static -e _start -o tiny tiny.o
        ./tiny || echo "status $?"
        gcc -static -o prog-static main.o libsquare.a
        ./prog-static a b || echo "status $?"
        md5sum main.o square.o tiny.o tiny libsquare.a | sed 's/ .*\// /'
        nm tiny.o | sort
        cd /
        rm -r "$d"
        echo done
        """;

    private static async Task SameAsNative(string platform, string script, params string[] tools)
    {
        foreach (string tool in tools)
        {
            if (!File.Exists("/usr/bin/" + tool) && !File.Exists("/bin/" + tool))
            {
                Assert.Inconclusive($"{tool} is not installed on this machine");
            }
        }

        var native = ProgramRun.Native("/bin/sh", ["-c", script], Sandboxes.DefaultEnvironment);
        Assert.AreEqual(0, native.Status, native.Error);
        var sandboxed = await Sandboxes.Run(platform, "/bin/sh", ["-c", script]);
        Assert.AreEqual(native.Text, sandboxed.Text, $"stdout differs; sandbox stderr: {sandboxed.Error}");
        Assert.AreEqual(native.Status, sandboxed.Status, sandboxed.Error);
    }

    [TestMethod]
    [DynamicData(nameof(Sandboxes.Platforms), typeof(Sandboxes))]
    public Task Sqlite3InDeleteAndWalJournalModes(string platform) => SameAsNative(platform, Sqlite, "sqlite3");

    [TestMethod]
    [DynamicData(nameof(Sandboxes.Platforms), typeof(Sandboxes))]
    public Task GccCompilesLdLinksAndTheProgramsRun(string platform) => SameAsNative(platform, CompileAndLink, "gcc", "ld", "ar", "nm", "md5sum");

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
