/*
 * Where the calling thread's time goes on `vine.c empty`: N empty function
 * tasks on VINE_LOCAL_CORES=2, each of the four calls timed as a phase of its
 * own (all N created, then all submitted, then all waited for, then all
 * deleted). Microseconds per task for each phase, and the bytes the library
 * holds per task created (malloc's count of bytes in use).
 *
 *   phases N
 */
#define _GNU_SOURCE
#include "../../include/vine.h"
#include "common.h"

#include <malloc.h>

static int empty(const void *in, size_t len, struct vine_buffer *out, void *ctx)
{
    (void)in; (void)len; (void)out; (void)ctx;
    return 0;
}

static long in_use(void)
{
    struct mallinfo2 mi = mallinfo2();
    return (long)(mi.uordblks + mi.hblkhd);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s N\n", argv[0]);
        return 2;
    }
    long n = atol(argv[1]);
    vine_register_function("empty", empty);
    struct vine_manager *m = vine_create(VINE_PORT_NONE);
    struct vine_task **ts = malloc(n * sizeof *ts);
    if (!m || !ts || vine_tune(m, "local-cores", 2) != 0) return 1;
    long before = in_use();
    double t0 = now();
    for (long i = 0; i < n; i++) ts[i] = vine_task_create_function("empty", NULL, 0);
    double t1 = now();
    long held = in_use() - before;
    for (long i = 0; i < n; i++)
        if (!vine_submit(m, ts[i])) return 1;
    double t2 = now();
    long got = 0;
    struct vine_task *t;
    while ((t = vine_wait(m, VINE_WAIT_FOREVER))) {
        if (vine_task_get_result(t) != VINE_RESULT_SUCCESS) return 1;
        ts[got++] = t;
    }
    double t3 = now();
    for (long i = 0; i < got; i++) vine_task_delete(ts[i]);
    double t4 = now();
    if (got != n) return 1;
    printf("per task: create %.3f us, submit %.3f us, wait %.3f us (with the pool finishing), "
           "delete %.3f us; %ld bytes held per task created; %.2f M tasks/s in all\n",
           (t1 - t0) / n * 1e6, (t2 - t1) / n * 1e6, (t3 - t2) / n * 1e6, (t4 - t3) / n * 1e6,
           held / n, n / (t4 - t0) / 1e6);
    free(ts);
    vine_delete(m);
    return 0;
}
