/* The floor for a chain link on this machine: two processes passing a 64-byte
 * message back and forth over loopback TCP (TCP_NODELAY), N round trips.
 * A vine chain link is at least one such round trip (manager to worker and
 * back) plus the hand-overs between threads inside each process.
 *   tcp_pingpong N   prints "tcp pingpong_us_per_round_trip X"
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static void fail(const char *what)
{
    perror(what);
    exit(1);
}

/* Reads or writes exactly n bytes. */
static void full(int fd, char *buf, size_t n, int writing)
{
    while (n > 0) {
        ssize_t k = writing ? write(fd, buf, n) : read(fd, buf, n);
        if (k <= 0) fail(writing ? "write" : "read");
        buf += k;
        n -= (size_t)k;
    }
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 10000;
    int one = 1;
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof a) || listen(l, 1) ||
        getsockname(l, (struct sockaddr *)&a, &len))
        fail("listen");
    char msg[64] = {0};
    pid_t child = fork();
    if (child < 0) fail("fork");
    if (child == 0) {
        int c = socket(AF_INET, SOCK_STREAM, 0);
        if (c < 0 || connect(c, (struct sockaddr *)&a, sizeof a)) fail("connect");
        setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        for (long i = 0; i < n; i++) {
            full(c, msg, sizeof msg, 0);
            full(c, msg, sizeof msg, 1);
        }
        _exit(0);
    }
    int s = accept(l, NULL, NULL);
    if (s < 0) fail("accept");
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    double t0 = now();
    for (long i = 0; i < n; i++) {
        full(s, msg, sizeof msg, 1);
        full(s, msg, sizeof msg, 0);
    }
    double t = now() - t0;
    waitpid(child, NULL, 0);
    printf("tcp pingpong_us_per_round_trip %.1f\n", t / n * 1e6);
    return 0;
}
