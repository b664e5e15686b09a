// Sequential file I/O in 1 MiB calls; prints MiB per second.
//   seqio write FILE MiB   creates FILE, writes MiB MiB (timed, fsync not included), unlinks it
//   seqio read FILE MiB    creates FILE with MiB MiB (untimed), reads it 4 times (timed), unlinks it
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
static char buf[1 << 20];
static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}
static int fill(const char *path, long mib) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) { perror("open"); exit(1); }
    for (long i = 0; i < mib; i++) {
        if (write(fd, buf, sizeof buf) != (ssize_t)sizeof buf) { perror("write"); exit(1); }
    }
    return close(fd);
}
int main(int argc, char **argv) {
    if (argc < 4) { fprintf(stderr, "usage: seqio write|read FILE MiB\n"); return 2; }
    const char *path = argv[2];
    long mib = atol(argv[3]);
    memset(buf, 0x5a, sizeof buf);
    double start, s;
    long total = 0;
    if (strcmp(argv[1], "write") == 0) {
        start = now();
        fill(path, mib);
        s = now() - start;
        total = mib;
    } else {
        fill(path, mib);
        start = now();
        for (int p = 0; p < 4; p++) {
            int fd = open(path, O_RDONLY);
            if (fd < 0) { perror("open"); return 1; }
            long n;
            while ((n = read(fd, buf, sizeof buf)) > 0) total += n;
            close(fd);
        }
        s = now() - start;
        total >>= 20;
    }
    unlink(path);
    printf("%.1f\n", total / s);
    return 0;
}
