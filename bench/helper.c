/* The one stand-in process of the peer benchmarks, so no shell cost
 * differs between the systems measured. Built statically by bench/peers.py.
 *
 *   helper true            exit 0 at once
 *   helper sleep           sleep until a signal ends it
 *   helper sigecho FIFO    print CLOCK_MONOTONIC ns to FIFO for every SIGUSR1
 *                          and SIGTERM (which it survives)
 *   helper orphans N       N orphans in bursts of 1000 double forks
 *   helper up FIFO         write 'u' to FIFO, then wait; on SIGTERM write 't'
 *                          and exit 0 (a compliant service)
 *   helper stubborn FIFO   write 'u' to FIFO, then wait, ignoring SIGTERM
 *   helper crash FIFO      write the CLOCK_MONOTONIC ns and exit 1 (a crash loop)
 *   helper spawn N FIFO    the reference spawner: fork and exec N
 *                          `helper up FIFO`, then wait (a bare C supervisor)
 *   helper lines N         write N lines of 100 bytes to stdout, then wait
 *   helper tail N          N orphans as above; then spin until PID 1 has no
 *                          zombie child left and print the ns that took
 *   helper ping PID N [TERM]
 *                          send SIGUSR1 (or SIGTERM) to PID N times, each time reading the
 *                          receiver's stamp (sigecho) from stdin; print each
 *                          latency in ns (a C driver: no interpreter in it)
 *   helper forkexec N      fork, exec `helper true` and wait, N times in a
 *                          row; print the ns it took (the machine's floor)
 *
 * Run as `run` (a runit or s6 `run` symlink to it), it reads its arguments
 * from the file `args` in its working directory (the service directory),
 * so no shell starts it under any system. (s6-supervise passes the service
 * name as the one argument; it is ignored.)
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

static void put(const char *what) {
    if (write(out, what, strlen(what)) < 0) _exit(3);
}

static void term(int sig) {
    (void)sig;
    put("t");
    _exit(0);
}

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void echo(int sig) {
    (void)sig;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%lld\n", (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec);
    if (write(out, buf, n) < 0) _exit(3);
}

/* Zombies among PID 1's children (this process's namespace, /proc mounted
 * for it), read from /proc/1/task/1/children and each child's stat. */
static int zombies_of_pid1(void) {
    static char kids[1 << 20];
    int fd = open("/proc/1/task/1/children", O_RDONLY);
    if (fd < 0) return 0;
    ssize_t len = 0, r;
    while ((r = read(fd, kids + len, sizeof kids - 1 - len)) > 0) len += r;
    close(fd);
    kids[len] = 0;
    int z = 0;
    for (char *tok = strtok(kids, " \n"); tok; tok = strtok(NULL, " \n")) {
        char path[64], stat[512];
        snprintf(path, sizeof path, "/proc/%s/stat", tok);
        int f = open(path, O_RDONLY);
        if (f < 0) continue;
        ssize_t k = read(f, stat, sizeof stat - 1);
        close(f);
        if (k <= 0) continue;
        stat[k] = 0;
        char *paren = strrchr(stat, ')');
        if (paren && paren[1] == ' ' && paren[2] == 'Z') z++;
    }
    return z;
}

/* Arguments from ./args, whitespace-separated, at most 7. */
static int args_file(char **argv) {
    static char buf[4096];
    int fd = open("args", O_RDONLY);
    if (fd < 0) return 1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return 1;
    buf[n] = 0;
    int argc = 1;
    for (char *tok = strtok(buf, " \t\n"); tok && argc < 8; tok = strtok(NULL, " \t\n")) argv[argc++] = tok;
    argv[argc] = NULL;
    return argc;
}

int main(int argc, char **argv) {
    char *file_argv[9];
    const char *base = strrchr(argv[0], '/');
    if (!strcmp(base ? base + 1 : argv[0], "run")) {
        file_argv[0] = argv[0];
        argc = args_file(file_argv);
        argv = file_argv;
    }
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
        sigaction(SIGTERM, &sa, NULL);
        if (write(out, "ready\n", 6) < 0) return 3;
        for (;;) pause();
    }
    if ((!strcmp(argv[1], "orphans") || !strcmp(argv[1], "tail")) && argc > 2) {
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
        if (!strcmp(argv[1], "tail")) {
            long long t0 = now_ns();
            while (zombies_of_pid1() > 0) {}
            printf("%lld\n", now_ns() - t0);
        }
        return 0;
    }
    if (!strcmp(argv[1], "ping") && argc > 3) {
        pid_t pid = atoi(argv[2]);
        long n = atol(argv[3]);
        int sig = argc > 4 && !strcmp(argv[4], "TERM") ? SIGTERM : SIGUSR1;
        FILE *in = fdopen(0, "r");
        char line[64];
        for (long i = 0; i < n; i++) {
            long long t0 = now_ns();
            if (kill(pid, sig) < 0 || !fgets(line, sizeof line, in)) return 3;
            printf("%lld\n", atoll(line) - t0);
        }
        return 0;
    }
    if (!strcmp(argv[1], "forkexec") && argc > 2) {
        long n = atol(argv[2]);
        long long t0 = now_ns();
        for (long i = 0; i < n; i++) {
            pid_t p = fork();
            if (p == 0) {
                execl("/proc/self/exe", argv[0], "true", (char *)NULL);
                _exit(127);
            }
            waitpid(p, NULL, 0);
        }
        printf("%lld\n", now_ns() - t0);
        return 0;
    }
    if ((!strcmp(argv[1], "up") || !strcmp(argv[1], "stubborn")) && argc > 2) {
        out = open(argv[2], O_WRONLY);
        if (out < 0) return 3;
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = !strcmp(argv[1], "up") ? term : SIG_IGN;
        sigaction(SIGTERM, &sa, NULL);
        put("u");
        for (;;) pause();
    }
    if (!strcmp(argv[1], "crash") && argc > 2) {
        out = open(argv[2], O_WRONLY);
        if (out < 0) return 3;
        char buf[32];
        snprintf(buf, sizeof buf, "%lld\n", now_ns());
        put(buf);
        return 1;
    }
    if (!strcmp(argv[1], "spawn") && argc > 3) {
        long n = atol(argv[2]);
        for (long i = 0; i < n; i++) {
            pid_t p = fork();
            if (p == 0) {
                execl("/proc/self/exe", argv[0], "up", argv[3], (char *)NULL);
                _exit(127);
            }
        }
        for (;;) pause();
    }
    if (!strcmp(argv[1], "lines") && argc > 2) {
        long n = atol(argv[2]);
        char line[100];
        memset(line, 'x', sizeof line);
        line[99] = '\n';
        static char buf[100 * 655];
        for (int i = 0; i < 655; i++) memcpy(buf + 100 * i, line, 100);
        while (n > 0) {
            long k = n < 655 ? n : 655;
            size_t len = 100 * k, off = 0;
            while (off < len) {
                ssize_t w = write(1, buf + off, len - off);
                if (w < 0) return 3;
                off += w;
            }
            n -= k;
        }
        for (;;) pause();
    }
    return 2;
}
