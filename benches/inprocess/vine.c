/*
 * vine through its C API, VINE_LOCAL_CORES=2, local function tasks, each result
 * taken back with vine_wait and deleted:
 *   spin100 N | spin1000 N : N tasks of 100 / 1000 us busy work (ideal/actual time)
 *   empty N                : N empty tasks from one thread (tasks/s)
 *   roundtrip N            : submit one, wait for it, N times (us each)
 *   threads8 N             : N empty tasks submitted by 8 threads (tasks/s)
 *   mixed N                : N tasks of 200 us, alternately 2 cores and 0.5 core;
 *                            efficiency, and the cores in use never above 2
 */
#define _GNU_SOURCE
#include "../../include/vine.h"
#include "common.h"

#include <pthread.h>
#include <stdatomic.h>

static int empty(const void *in, size_t len, struct vine_buffer *out, void *ctx)
{
    (void)in; (void)len; (void)out; (void)ctx;
    return 0;
}

static int spin100(const void *in, size_t len, struct vine_buffer *out, void *ctx)
{
    (void)in; (void)len; (void)out; (void)ctx;
    spin(100);
    return 0;
}

static int spin1000(const void *in, size_t len, struct vine_buffer *out, void *ctx)
{
    (void)in; (void)len; (void)out; (void)ctx;
    spin(1000);
    return 0;
}

/* Thousandths of a core in use by mixed tasks, and the most seen. */
static atomic_long in_use, most;

static int mixed(const void *in, size_t len, struct vine_buffer *out, void *ctx)
{
    (void)out; (void)ctx;
    long milli = 0;
    if (len == sizeof milli) memcpy(&milli, in, sizeof milli);
    long now_in = atomic_fetch_add(&in_use, milli) + milli;
    long m = atomic_load(&most);
    while (now_in > m && !atomic_compare_exchange_weak(&most, &m, now_in)) {
    }
    spin(200);
    atomic_fetch_sub(&in_use, milli);
    return 0;
}

static void fail(const char *what)
{
    fprintf(stderr, "vine: %s: %s\n", what, vine_last_error());
    exit(1);
}

static long drain(struct vine_manager *m)
{
    long n = 0;
    struct vine_task *t;
    while ((t = vine_wait(m, VINE_WAIT_FOREVER))) {
        if (vine_task_get_result(t) != VINE_RESULT_SUCCESS) fail("a task failed");
        vine_task_delete(t);
        n++;
    }
    return n;
}

struct submitter {
    struct vine_manager *m;
    long n;
};

static void *submit_empty(void *arg)
{
    struct submitter *s = arg;
    for (long i = 0; i < s->n; i++)
        if (!vine_submit(s->m, vine_task_create_function("empty", NULL, 0))) fail("submit");
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s spin100|spin1000|empty|roundtrip|threads8|mixed N\n", argv[0]);
        return 2;
    }
    long n = atol(argv[2]);
    vine_register_function("empty", empty);
    vine_register_function("spin100", spin100);
    vine_register_function("spin1000", spin1000);
    vine_register_function("mixed", mixed);
    struct vine_manager *m = vine_create(VINE_PORT_NONE);
    if (!m || vine_tune(m, "local-cores", 2) != 0) fail("create");
    const char *w = argv[1];
    double t0 = now();
    if (!strcmp(w, "spin100") || !strcmp(w, "spin1000")) {
        for (long i = 0; i < n; i++)
            if (!vine_submit(m, vine_task_create_function(w, NULL, 0))) fail("submit");
        if (drain(m) != n) fail("lost tasks");
        double us = !strcmp(w, "spin100") ? 100 : 1000;
        report("vine", w, n * us * 1e-6 / 2 / (now() - t0));
    } else if (!strcmp(w, "empty")) {
        for (long i = 0; i < n; i++)
            if (!vine_submit(m, vine_task_create_function("empty", NULL, 0))) fail("submit");
        if (drain(m) != n) fail("lost tasks");
        report("vine", w, n / (now() - t0));
    } else if (!strcmp(w, "roundtrip")) {
        for (long i = 0; i < n; i++) {
            if (!vine_submit(m, vine_task_create_function("empty", NULL, 0))) fail("submit");
            struct vine_task *t = vine_wait(m, VINE_WAIT_FOREVER);
            if (!t || vine_task_get_result(t) != VINE_RESULT_SUCCESS) fail("round trip");
            vine_task_delete(t);
        }
        report("vine", w, (now() - t0) / n * 1e6);
    } else if (!strcmp(w, "threads8")) {
        pthread_t th[8];
        struct submitter s = {m, n / 8};
        for (int i = 0; i < 8; i++) pthread_create(&th[i], NULL, submit_empty, &s);
        long got = 0;
        while (got < s.n * 8) {
            struct vine_task *t = vine_wait(m, VINE_WAIT_FOREVER);
            if (!t) {
                /* Nothing outstanding: every task submitted so far is taken,
                   and the submitters have more to come. */
                sched_yield();
                continue;
            }
            if (vine_task_get_result(t) != VINE_RESULT_SUCCESS) fail("threads8");
            vine_task_delete(t);
            got++;
        }
        for (int i = 0; i < 8; i++) pthread_join(th[i], NULL);
        report("vine", w, got / (now() - t0));
    } else if (!strcmp(w, "mixed")) {
        double core_seconds = 0;
        for (long i = 0; i < n; i++) {
            long milli = i % 2 ? 500 : 2000;
            struct vine_task *t = vine_task_create_function("mixed", &milli, sizeof milli);
            vine_task_set_cores(t, milli / 1000.0);
            core_seconds += milli / 1000.0 * 200e-6;
            if (!vine_submit(m, t)) fail("submit");
        }
        if (drain(m) != n) fail("lost tasks");
        if (atomic_load(&most) > 2000) {
            fprintf(stderr, "vine: %ld thousandths of a core in use at once\n", atomic_load(&most));
            return 1;
        }
        report("vine", w, core_seconds / 2 / (now() - t0));
    } else {
        return 2;
    }
    vine_delete(m);
    return 0;
}
