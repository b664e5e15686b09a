// Reads a file in 1 MiB reads, several passes; prints MiB per second.
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
static char buf[1 << 20];
int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: readmib FILE [passes]\n"); return 2; }
    int passes = argc > 2 ? atoi(argv[2]) : 4;
    struct timespec a, b;
    long total = 0;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (int p = 0; p < passes; p++) {
        int fd = open(argv[1], O_RDONLY);
        long n;
        while ((n = read(fd, buf, sizeof buf)) > 0) total += n;
        close(fd);
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    double s = (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9;
    printf("%.1f\n", total / 1048576.0 / s);
    return 0;
}
