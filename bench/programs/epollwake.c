// epoll wake-up latencies (benchmark helper, not a test); prints one number, the last line.
//   epollwake eventfd N : one thread: write an eventfd, epoll_wait returns it, read it (ns per round)
//   epollwake timer N   : a 1 ms periodic timerfd; how late epoll_wait returns after each expiry (us)
//   epollwake thread N  : a thread blocked in epoll_wait, woken by an eventfd write (us per wake-up);
//                         prints n/a where threads cannot be made (the sandbox before clone exists)
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int ep, efd, ack;
static long rounds;
static long long total_ns;

static void *waiter(void *unused) {
    (void)unused;
    struct epoll_event ev;
    unsigned long long sent, one = 1;
    for (long i = 0; i < rounds; i++) {
        epoll_wait(ep, &ev, 1, -1);
        read(efd, &sent, sizeof sent);
        total_ns += now_ns() - (long long)sent;
        write(ack, &one, sizeof one);
    }
    return NULL;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "eventfd";
    rounds = argc > 2 ? atol(argv[2]) : 10000;
    ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN}, out;
    if (strcmp(mode, "eventfd") == 0) {
        efd = eventfd(0, 0);
        epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev);
        unsigned long long v = 1;
        long long start = now_ns();
        for (long i = 0; i < rounds; i++) {
            write(efd, &v, sizeof v);
            epoll_wait(ep, &out, 1, -1);
            read(efd, &v, sizeof v);
        }
        printf("%.1f\n", (double)(now_ns() - start) / rounds);
    } else if (strcmp(mode, "timer") == 0) {
        int tfd = timerfd_create(CLOCK_MONOTONIC, 0);
        epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &ev);
        // An absolute first expiry, so the program knows the timer's grid exactly.
        long long first = now_ns() + 5000000;
        struct itimerspec its = {.it_value = {first / 1000000000, first % 1000000000}, .it_interval = {0, 1000000}};
        timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL);
        long long late = 0, expected = first;
        for (long i = 0; i < rounds; i++) {
            epoll_wait(ep, &out, 1, -1);
            long long t = now_ns();
            unsigned long long ticks;
            read(tfd, &ticks, sizeof ticks);
            expected += (long long)(ticks - 1) * 1000000;
            late += t - expected;
            expected += 1000000;
        }
        printf("%.1f\n", (double)late / rounds / 1000);
    } else {
        efd = eventfd(0, 0);
        ack = eventfd(0, 0);
        epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev);
        pthread_t thread;
        if (pthread_create(&thread, NULL, waiter, NULL) != 0) {
            printf("n/a\n");
            return 0;
        }
        unsigned long long v;
        for (long i = 0; i < rounds; i++) {
            usleep(100); // let the waiter block
            v = (unsigned long long)now_ns();
            write(efd, &v, sizeof v);
            read(ack, &v, sizeof v);
        }
        pthread_join(thread, NULL);
        printf("%.1f\n", (double)total_ns / rounds / 1000);
    }
    return 0;
}
