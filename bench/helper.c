/* The one stand-in process of the peer benchmarks, so no shell cost
 * differs between the systems measured. Built statically by bench/peers.py.
 *
 *   helper true            exit 0 at once
 *   helper sleep           sleep until a signal ends it
 *   helper sigecho FIFO    print CLOCK_MONOTONIC ns to FIFO for every SIGUSR1
 *   helper orphans N       N orphans in bursts of 1000 double forks
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int out = -1;

static void echo(int sig) {
    (void)sig;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%lld\n", (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec);
    if (write(out, buf, n) < 0) _exit(3);
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    if (!strcmp(argv[1], "true")) return 0;
    if (!strcmp(argv[1], "sleep")) {
        for (;;) pause();
    }
    if (!strcmp(argv[1], "sigecho") && argc > 2) {
        out = open(argv[2], O_WRONLY);
        if (out < 0) return 3;
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = echo;
        sigaction(SIGUSR1, &sa, NULL);
        if (write(out, "ready\n", 6) < 0) return 3;
        for (;;) pause();
    }
    if (!strcmp(argv[1], "orphans") && argc > 2) {
        long n = atol(argv[2]);
        for (long done = 0; done < n; done += 1000) {
            for (int i = 0; i < 1000; i++) {
                pid_t p = fork();
                if (p == 0) {
                    if (fork() == 0) _exit(0);
                    _exit(0);
                }
                if (p < 0) usleep(1000);
            }
            while (wait(NULL) > 0) {}
        }
        return 0;
    }
    return 2;
}
