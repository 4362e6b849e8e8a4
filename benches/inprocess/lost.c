/*
 * Where the lost time of `vine.c spin100` goes. N tasks of 100 us busy work on
 * VINE_LOCAL_CORES=2; each task records when it started and ended on its thread.
 * Printed, per thread that ran tasks:
 *   head    : from the first submission to its first task
 *   gaps    : between the end of one of its tasks and the start of its next
 *             (the pool's own work per task, and any wait for the next task)
 *   overrun : a task's time past its 100 us (the thread was preempted near the
 *             end of its spin, so the spin ended late)
 *   tail    : from its last task to the last result taken back
 * and, for every thread of the process, its CPU time, the time it was runnable
 * but not running, and its voluntary and involuntary context switches.
 *
 *   lost N
 */
#define _GNU_SOURCE
#include "../../include/vine.h"
#include "common.h"

#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>

#define MAX_THREADS 16

struct record {
    double *start, *end;
    long n;
};

static struct record threads[MAX_THREADS];
static atomic_int nthreads;
static long capacity;
static _Thread_local int me = -1;

static int spin100(const void *in, size_t len, struct vine_buffer *out, void *ctx)
{
    (void)in; (void)len; (void)out; (void)ctx;
    if (me < 0) {
        me = atomic_fetch_add(&nthreads, 1);
        if (me >= MAX_THREADS) abort();
        threads[me].start = malloc(sizeof(double) * capacity);
        threads[me].end = malloc(sizeof(double) * capacity);
        if (!threads[me].start || !threads[me].end) abort();
    }
    struct record *r = &threads[me];
    double s = now();
    double end = s + 100e-6;
    while (now() < end) {
    }
    r->start[r->n] = s;
    r->end[r->n] = now();
    r->n++;
    return 0;
}

/* CPU time of the calling thread, in seconds. */
static double thread_cpu(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

/* The first line of `path`, without its newline, into buf. */
static int first_line(const char *path, char *buf, int len)
{
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    int ok = fgets(buf, len, f) != NULL;
    fclose(f);
    if (!ok) return -1;
    buf[strcspn(buf, "\n")] = 0;
    return 0;
}

static long field(const char *path, const char *name)
{
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char line[256];
    long v = -1;
    size_t n = strlen(name);
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, name, n)) v = atol(line + n);
    fclose(f);
    return v;
}

static void thread_table(void)
{
    DIR *d = opendir("/proc/self/task");
    if (!d) return;
    struct dirent *e;
    printf("%-16s %10s %12s %10s %12s\n", "thread", "cpu ms", "runnable ms", "voluntary",
           "involuntary");
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char path[300], comm[64], stat[128];
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        if (first_line(path, comm, sizeof comm)) continue;
        snprintf(path, sizeof path, "/proc/self/task/%s/schedstat", e->d_name);
        if (first_line(path, stat, sizeof stat)) continue;
        double run_ns = 0, wait_ns = 0;
        if (sscanf(stat, "%lf %lf", &run_ns, &wait_ns) != 2) continue;
        snprintf(path, sizeof path, "/proc/self/task/%s/status", e->d_name);
        printf("%-16s %10.2f %12.2f %10ld %12ld\n", comm, run_ns / 1e6, wait_ns / 1e6,
               field(path, "voluntary_ctxt_switches:"),
               field(path, "nonvoluntary_ctxt_switches:"));
    }
    closedir(d);
}

int main(int argc, char **argv)
{
    if (argc != 2 || atol(argv[1]) <= 0) {
        fprintf(stderr, "usage: %s N\n", argv[0]);
        return 2;
    }
    long n = atol(argv[1]);
    capacity = n;
    vine_register_function("spin100", spin100);
    struct vine_manager *m = vine_create(VINE_PORT_NONE);
    if (!m || vine_tune(m, "local-cores", 2) != 0) return 1;
    double t0 = now();
    double cpu0 = thread_cpu();
    for (long i = 0; i < n; i++)
        if (!vine_submit(m, vine_task_create_function("spin100", NULL, 0))) return 1;
    double submitted = now();
    double submit_cpu = thread_cpu() - cpu0;
    long got = 0;
    struct vine_task *t;
    while ((t = vine_wait(m, VINE_WAIT_FOREVER))) {
        if (vine_task_get_result(t) != VINE_RESULT_SUCCESS) return 1;
        vine_task_delete(t);
        got++;
    }
    double t1 = now();
    if (got != n) return 1;
    printf("efficiency %.4f, %.2f ms for %ld tasks, %.2f ms of it submitting "
           "(%.2f ms of the calling thread's CPU)\n",
           n * 100e-6 / 2 / (t1 - t0), (t1 - t0) * 1e3, n, (submitted - t0) * 1e3,
           submit_cpu * 1e3);
    printf("%-8s %7s %9s %9s %11s %9s\n", "thread", "tasks", "head ms", "gaps ms",
           "overrun ms", "tail ms");
    for (int k = 0; k < nthreads; k++) {
        struct record *r = &threads[k];
        double gaps = 0, over = 0;
        for (long i = 0; i < r->n; i++) {
            over += r->end[i] - r->start[i] - 100e-6;
            if (i) gaps += r->start[i] - r->end[i - 1];
        }
        printf("%-8d %7ld %9.3f %9.3f %11.3f %9.3f\n", k, r->n, (r->start[0] - t0) * 1e3,
               gaps * 1e3, over * 1e3, (t1 - r->end[r->n - 1]) * 1e3);
    }
    thread_table();
    vine_delete(m);
    return 0;
}
