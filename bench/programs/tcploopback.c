// TCP over 127.0.0.1 between two processes: `tcploopback pingpong N` prints the mean
// round trip of a 1-byte ping-pong in microseconds; `tcploopback stream MIB` prints MiB/s of a
// one-way stream (64 KiB writes). An optional third argument is the listener's port (network mode
// host only lets a sandbox listen on the ports it allows); else an ephemeral port. The last line is the figure.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    if (argc < 3) return 2;
    int pingpong = strcmp(argv[1], "pingpong") == 0;
    long n = atol(argv[2]);
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (argc > 3) a.sin_port = htons(atoi(argv[3]));
    socklen_t len = sizeof a;
    if (bind(l, (struct sockaddr *)&a, len) != 0 || listen(l, 1) != 0) return 1;
    getsockname(l, (struct sockaddr *)&a, &len);
    static char buf[65536];
    pid_t c = fork();
    if (c == 0) {
        int s = socket(AF_INET, SOCK_STREAM, 0);
        int one = 1;
        setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (connect(s, (struct sockaddr *)&a, len) != 0) _exit(1);
        if (pingpong) {
            for (long i = 0; i < n; i++) {
                if (read(s, buf, 1) != 1 || write(s, buf, 1) != 1) _exit(1);
            }
        } else {
            long total = n << 20, got = 0;
            while (got < total) {
                ssize_t r = read(s, buf, sizeof buf);
                if (r <= 0) _exit(1);
                got += r;
            }
            write(s, "k", 1);
        }
        _exit(0);
    }
    int s = accept(l, NULL, NULL);
    int one = 1;
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    double start = now();
    if (pingpong) {
        for (long i = 0; i < n; i++) {
            if (write(s, "p", 1) != 1 || read(s, buf, 1) != 1) return 1;
        }
        printf("%.2f\n", (now() - start) / n * 1e6);
    } else {
        long total = n << 20, sent = 0;
        while (sent < total) {
            ssize_t w = write(s, buf, sizeof buf);
            if (w <= 0) return 1;
            sent += w;
        }
        read(s, buf, 1);
        printf("%.1f\n", n / (now() - start));
    }
    waitpid(c, NULL, 0);
    return 0;
}
