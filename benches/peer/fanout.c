/* One input read by one task on each of N remote workers (each task bound to its
 * worker by a feature), with or without transfers between workers. The workers
 * are started by the caller (run.sh) with --feature w0 .. w(N-1); this program
 * prints its port, waits for them, runs the tasks, and prints the wall time from
 * the first submit to the last result and the bytes the manager sent and the
 * bytes moved between workers.
 * With peertls, the manager's links use TLS (a self-signed certificate whose
 * fingerprint it prints) and so do the workers' links to each other.
 * usage: fanout FILE N peer|nopeer|peertls */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vine.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s FILE N peer|nopeer|peertls\n", argv[0]);
        return 2;
    }
    int n = atoi(argv[2]);
    int tls = strcmp(argv[3], "peertls") == 0;
    struct vine_manager *m = tls ? vine_ssl_create_self_signed(0) : vine_create(0);
    if (!m) {
        fprintf(stderr, "vine_create: %s\n", vine_last_error());
        return 1;
    }
    vine_tune(m, "local-cores", 0);
    vine_tune(m, "wait-for-workers", n);
    if (strcmp(argv[3], "nopeer") != 0)
        vine_enable_peer_transfers(m);
    else
        vine_disable_peer_transfers(m);
    if (tls)
        printf("fingerprint %s\n", vine_ssl_fingerprint(m));
    printf("port %d\n", vine_port(m));
    fflush(stdout);
    struct vine_file *input = vine_declare_file(m, argv[1], VINE_CACHE_LEVEL_WORKFLOW, 0);
    double start = now();
    for (int i = 0; i < n; i++) {
        struct vine_task *t = vine_task_create("wc -c < in > /dev/null");
        char feature[32];
        snprintf(feature, sizeof feature, "w%d", i);
        vine_task_add_input(t, input, "in", 0);
        vine_task_add_feature(t, feature);
        vine_submit(m, t);
    }
    int failed = 0;
    for (int i = 0; i < n; i++) {
        struct vine_task *t = vine_wait(m, 600);
        if (!t) {
            fprintf(stderr, "no task came back\n");
            return 1;
        }
        if (vine_task_get_result(t) != VINE_RESULT_SUCCESS)
            failed++;
        vine_task_delete(t);
    }
    double took = now() - start;
    struct vine_stats s;
    vine_get_stats(m, &s);
    printf("wall_s %.3f\nbytes_sent %lld\nbytes_peer %lld\nfailed %d\n", took,
           (long long)s.bytes_sent, (long long)s.bytes_peer, failed);
    fflush(stdout);
    vine_delete(m);
    return failed ? 1 : 0;
}
