/*
 * vine through its C API on 2 local cores:
 *   throughput N  : N empty function tasks submitted from one thread, then all waited
 *   roundtrip N   : submit one task and wait for it, N times (ns per round trip)
 *   efficiency N  : N tasks of 100 us busy work (ideal time / actual time)
 *   memory N      : RSS growth per task with N tasks (16-byte inputs) queued
 *   byid N        : N finished tasks taken with vine_wait_for_task_id, newest first
 * Every task is checked; a broken run fails instead of printing a number.
 * VINE_BENCH_TXN=FILE also writes the transactions log to FILE (the time
 * vine_delete takes to finish writing it goes to standard error).
 */
#define _GNU_SOURCE
#include "vine.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static int empty(const void *in, size_t len, struct vine_buffer *out, void *ctx)
{
    (void)in; (void)len; (void)out; (void)ctx;
    return 0;
}

static int busy_100us(const void *in, size_t len, struct vine_buffer *out, void *ctx)
{
    (void)in; (void)len; (void)out; (void)ctx;
    double end = now() + 100e-6;
    while (now() < end) {}
    return 0;
}

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int open_gate, inside;

static int gate(const void *in, size_t len, struct vine_buffer *out, void *ctx)
{
    (void)in; (void)len; (void)out; (void)ctx;
    pthread_mutex_lock(&lock);
    inside++;
    pthread_cond_broadcast(&cond);
    while (!open_gate) pthread_cond_wait(&cond, &lock);
    pthread_mutex_unlock(&lock);
    return 0;
}

static long rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmRSS:", 6)) kb = atol(line + 6);
    if (f) fclose(f);
    return kb;
}

static void fail(const char *what)
{
    fprintf(stderr, "bench_vine: %s: %s\n", what, vine_last_error());
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

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s throughput|roundtrip|efficiency|memory|byid N\n", argv[0]);
        return 2;
    }
    long n = atol(argv[2]);
    vine_register_function("empty", empty);
    vine_register_function("busy", busy_100us);
    vine_register_function("gate", gate);
    struct vine_manager *m = vine_create(VINE_PORT_NONE);
    if (!m || vine_tune(m, "local-cores", 2) != 0) fail("create");
    /* With VINE_BENCH_TXN=FILE, the transactions log is written while it runs. */
    const char *txn = getenv("VINE_BENCH_TXN");
    if (txn && vine_enable_transactions_log(m, txn) != 1) fail("transactions log");
    char input[16] = "0123456789abcde";

    if (!strcmp(argv[1], "throughput")) {
        double t0 = now();
        for (long i = 0; i < n; i++)
            if (!vine_submit(m, vine_task_create_function("empty", input, sizeof input))) fail("submit");
        if (drain(m) != n) fail("lost tasks");
        printf("vine throughput_tasks_per_s %.0f\n", n / (now() - t0));
    } else if (!strcmp(argv[1], "roundtrip")) {
        double t0 = now();
        for (long i = 0; i < n; i++) {
            if (!vine_submit(m, vine_task_create_function("empty", input, sizeof input))) fail("submit");
            struct vine_task *t = vine_wait(m, VINE_WAIT_FOREVER);
            if (!t || vine_task_get_result(t) != VINE_RESULT_SUCCESS) fail("round trip");
            vine_task_delete(t);
        }
        printf("vine roundtrip_ns %.0f\n", (now() - t0) / n * 1e9);
    } else if (!strcmp(argv[1], "efficiency")) {
        double t0 = now();
        for (long i = 0; i < n; i++)
            if (!vine_submit(m, vine_task_create_function("busy", NULL, 0))) fail("submit");
        if (drain(m) != n) fail("lost tasks");
        double ideal = n * 100e-6 / 2;
        printf("vine efficiency %.3f\n", ideal / (now() - t0));
    } else if (!strcmp(argv[1], "memory")) {
        /* Both cores held by gate tasks, so the N tasks stay queued. */
        for (int i = 0; i < 2; i++) vine_submit(m, vine_task_create_function("gate", NULL, 0));
        pthread_mutex_lock(&lock);
        while (inside < 2) pthread_cond_wait(&cond, &lock);
        pthread_mutex_unlock(&lock);
        long before = rss_kb();
        for (long i = 0; i < n; i++)
            if (!vine_submit(m, vine_task_create_function("empty", input, sizeof input))) fail("submit");
        struct vine_stats s;
        do vine_get_stats(m, &s); while (s.tasks_waiting + s.tasks_on_workers < n); /* all at the manager */
        long after = rss_kb();
        printf("vine memory_bytes_per_task %.0f\n", (after - before) * 1024.0 / n);
        pthread_mutex_lock(&lock);
        open_gate = 1;
        pthread_cond_broadcast(&cond);
        pthread_mutex_unlock(&lock);
        if (drain(m) != n + 2) fail("lost tasks");
    } else if (!strcmp(argv[1], "byid")) {
        int *ids = malloc(n * sizeof *ids);
        if (!ids) fail("malloc");
        for (long i = 0; i < n; i++)
            if (!(ids[i] = vine_submit(m, vine_task_create_function("empty", input, sizeof input)))) fail("submit");
        struct vine_stats s;
        do vine_get_stats(m, &s); while (s.tasks_done < n); /* all finished, none taken */
        double t0 = now();
        for (long i = n - 1; i >= 0; i--) {
            struct vine_task *t = vine_wait_for_task_id(m, ids[i], VINE_WAIT_FOREVER);
            if (!t || vine_task_get_id(t) != ids[i]) fail("wait by id");
            vine_task_delete(t);
        }
        printf("vine byid_ns %.0f\n", (now() - t0) / n * 1e9);
        free(ids);
    } else {
        return 2;
    }
    double d0 = now();
    vine_delete(m);
    /* What is left of the log is written by vine_delete: how long that takes. */
    if (txn) fprintf(stderr, "vine delete_s %.3f\n", now() - d0);
    return 0;
}
