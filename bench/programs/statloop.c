// stat of one path N times (a cached name: the cost of a path walk and an attribute fetch);
// prints nanoseconds per call. "missing" mode stats a name that does not exist (ENOENT).
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 20000;
    const char *path = argc > 2 ? argv[2] : "/etc/passwd";
    int missing = argc > 3 && strcmp(argv[3], "missing") == 0;
    struct stat st;
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (long i = 0; i < n; i++) {
        int r = stat(path, &st);
        if (missing ? (r == 0 || errno != ENOENT) : r != 0) { perror("stat"); return 1; }
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    printf("%.1f\n", ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / n);
    return 0;
}
