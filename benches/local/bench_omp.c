/*
 * The same work with OpenMP tasks (libgomp), 2 threads:
 *   throughput N  : one producer creates N empty tasks, then taskwait
 *   roundtrip N   : create one task and taskwait, N times (ns per round trip)
 *   efficiency N  : N tasks of 100 us busy work
 *   memory N      : RSS growth per task while N tasks (16-byte firstprivate inputs)
 *                   are created before any is waited for. libgomp runs a new task at
 *                   once, in the creating thread, when more than 64 per thread are
 *                   queued, so it never holds N: the figure is what it used.
 */
#include <omp.h>
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

struct input { char bytes[16]; };
static long done;

int main(int argc, char **argv)
{
    if (argc != 3) return 2;
    long n = atol(argv[2]);
    struct input in = {"0123456789abcde"};
    double t0 = 0, t1 = 0;
    long before = 0, after = 0;
    omp_set_num_threads(2);
#pragma omp parallel
#pragma omp single
    {
        if (!strcmp(argv[1], "throughput")) {
            t0 = now();
            for (long i = 0; i < n; i++) {
#pragma omp task firstprivate(in)
                {
                    (void)in;
#pragma omp atomic
                    done++;
                }
            }
#pragma omp taskwait
            t1 = now();
        } else if (!strcmp(argv[1], "roundtrip")) {
            t0 = now();
            for (long i = 0; i < n; i++) {
#pragma omp task
                {
#pragma omp atomic
                    done++;
                }
#pragma omp taskwait
            }
            t1 = now();
        } else if (!strcmp(argv[1], "efficiency")) {
            t0 = now();
            for (long i = 0; i < n; i++) {
#pragma omp task
                {
                    double end = now() + 100e-6;
                    while (now() < end) {}
#pragma omp atomic
                    done++;
                }
            }
#pragma omp taskwait
            t1 = now();
        } else if (!strcmp(argv[1], "memory")) {
            before = rss_kb();
            for (long i = 0; i < n; i++) {
#pragma omp task firstprivate(in)
                {
                    (void)in;
#pragma omp atomic
                    done++;
                }
            }
            after = rss_kb();
#pragma omp taskwait
        }
    }
    if (done != n) {
        fprintf(stderr, "bench_omp: %ld of %ld tasks ran\n", done, n);
        return 1;
    }
    if (!strcmp(argv[1], "throughput")) printf("openmp throughput_tasks_per_s %.0f\n", n / (t1 - t0));
    if (!strcmp(argv[1], "roundtrip")) printf("openmp roundtrip_ns %.0f\n", (t1 - t0) / n * 1e9);
    if (!strcmp(argv[1], "efficiency")) printf("openmp efficiency %.3f\n", n * 100e-6 / 2 / (t1 - t0));
    if (!strcmp(argv[1], "memory")) printf("openmp memory_bytes_per_task %.0f\n", (after - before) * 1024.0 / n);
    return 0;
}
