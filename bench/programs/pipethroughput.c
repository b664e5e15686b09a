// A child writes 256 MiB into a pipe in 64 KiB writes, the parent reads it; prints MiB per second.
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
static char buf[65536];
int main(int argc, char **argv) {
    long mib = argc > 1 ? atol(argv[1]) : 256;
    int p[2];
    pipe(p);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    pid_t c = fork();
    if (c == 0) {
        close(p[0]);
        for (long left = mib << 20; left > 0;) { long n = write(p[1], buf, sizeof buf); if (n <= 0) _exit(1); left -= n; }
        _exit(0);
    }
    close(p[1]);
    long total = 0, n;
    while ((n = read(p[0], buf, sizeof buf)) > 0) total += n;
    waitpid(c, NULL, 0);
    clock_gettime(CLOCK_MONOTONIC, &b);
    printf("%.1f\n", total / 1048576.0 / ((b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9));
    return 0;
}
