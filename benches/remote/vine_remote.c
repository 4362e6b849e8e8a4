/*
 * vine over the network: 2 worker processes of 1 core each on loopback.
 *   commands  N   : N empty commands (`true`), tasks per second
 *   functions N   : N empty function tasks, tasks per second
 *   chain N       : submit one function task, wait for it, N times: microseconds per link
 * The workers are this program itself, re-run as `--vine-worker` (it registers the
 * function they serve), started and supervised by the manager's local factory.
 */
#include "vine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int empty(const void *in, size_t len, struct vine_buffer *out, void *ctx)
{
    (void)in; (void)len; (void)out; (void)ctx;
    return 0;
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static void die(const char *what)
{
    fprintf(stderr, "vine_remote: %s: %s\n", what, vine_last_error());
    exit(1);
}

/* Waits for every outstanding task; fails unless each succeeded. */
static int drain(struct vine_manager *m)
{
    int n = 0;
    struct vine_task *t;
    while ((t = vine_wait(m, 600))) {
        if (vine_task_get_result(t) != VINE_RESULT_SUCCESS || vine_task_get_exit_code(t) != 0) {
            fprintf(stderr, "task %d: %s %s\n", vine_task_get_id(t),
                    vine_result_string(vine_task_get_result(t)), vine_task_get_reason(t));
            exit(1);
        }
        vine_task_delete(t);
        n++;
    }
    return n;
}

int main(int argc, char **argv)
{
    if (vine_register_function("empty", empty) != 0) die("register");
    if (getenv("VINE_REMOTE_BENCH_WORKER")) return vine_worker_main(argc, argv);
    if (argc != 3) {
        fprintf(stderr, "usage: %s commands|functions|chain N\n", argv[0]);
        return 2;
    }
    const char *what = argv[1];
    int n = atoi(argv[2]);
    /* VINE_BENCH_TLS=1: workers connect over TLS (a generated certificate they pin).
     * VINE_PASSWORD_FILE: workers prove the password; without TLS every frame is
     * then authenticated. */
    const char *tls = getenv("VINE_BENCH_TLS");
    struct vine_manager *m = tls && !strcmp(tls, "1") ? vine_ssl_create_self_signed(0) : vine_create(0);
    if (!m) die("create");
    if (vine_tune(m, "local-cores", 0) != 0) die("local-cores");
    if (vine_tune(m, "wait-for-workers", 2) != 0) die("wait-for-workers");
    setenv("VINE_WORKER_PATH", argv[0], 1);
    setenv("VINE_REMOTE_BENCH_WORKER", "1", 1);
    if (vine_tune(m, "local-worker-processes", 2) != 0) die("local-worker-processes");

    /* Warm up: both workers connected and serving. */
    for (int i = 0; i < 4; i++) vine_submit(m, vine_task_create_function("empty", NULL, 0));
    drain(m);

    double t0 = now();
    int done = 0;
    if (!strcmp(what, "commands")) {
        for (int i = 0; i < n; i++)
            if (!vine_submit(m, vine_task_create("true"))) die("submit");
        done = drain(m);
        printf("vine commands_per_s %.0f\n", done / (now() - t0));
    } else if (!strcmp(what, "functions")) {
        for (int i = 0; i < n; i++)
            if (!vine_submit(m, vine_task_create_function("empty", NULL, 0))) die("submit");
        done = drain(m);
        printf("vine functions_per_s %.0f\n", done / (now() - t0));
    } else if (!strcmp(what, "chain")) {
        for (int i = 0; i < n; i++) {
            if (!vine_submit(m, vine_task_create_function("empty", NULL, 0))) die("submit");
            done += drain(m);
        }
        printf("vine chain_us_per_link %.1f\n", (now() - t0) / n * 1e6);
    } else {
        fprintf(stderr, "unknown measure %s\n", what);
        return 2;
    }
    if (done != n) {
        fprintf(stderr, "vine_remote: %d of %d tasks came back\n", done, n);
        return 1;
    }
    if (vine_shutdown(m) != 0) die("shutdown");
    vine_delete(m);
    return 0;
}
