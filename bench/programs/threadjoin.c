// pthread_create + pthread_join N times; prints microseconds per pair.
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
static void *nothing(void *arg) { return arg; }
int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 200;
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (long i = 0; i < n; i++) {
        pthread_t t;
        pthread_create(&t, NULL, nothing, NULL);
        pthread_join(t, NULL);
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    printf("%.1f\n", ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / n / 1000);
    return 0;
}
