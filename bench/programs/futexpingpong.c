// Two threads hand a token back and forth through a futex N times; prints microseconds per handoff.
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
static atomic_int token;
static long rounds;
static void wait_for(int value) {
    // Sleep only while the token still holds the other value: the kernel compares atomically, so a
    // hand-over between the check and the wait makes FUTEX_WAIT return at once (EAGAIN).
    while (atomic_load(&token) != value) syscall(SYS_futex, &token, FUTEX_WAIT_PRIVATE, 1 - value, NULL, NULL, 0);
}
static void pass(int value) {
    atomic_store(&token, value);
    syscall(SYS_futex, &token, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}
static void *other(void *arg) {
    (void)arg;
    for (long i = 0; i < rounds; i++) { wait_for(1); pass(0); }
    return NULL;
}
int main(int argc, char **argv) {
    rounds = argc > 1 ? atol(argv[1]) : 2000;
    pthread_t t;
    pthread_create(&t, NULL, other, NULL);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (long i = 0; i < rounds; i++) { pass(1); wait_for(0); }
    clock_gettime(CLOCK_MONOTONIC, &b);
    pthread_join(t, NULL);
    printf("%.1f\n", ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / rounds / 2 / 1000);
    return 0;
}
