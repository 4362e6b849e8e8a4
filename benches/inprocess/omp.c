/*
 * OpenMP tasks (libgomp), 2 threads: the workloads of vine.c but mixed (OpenMP
 * tasks have no resource requests) and threads8 (one producer per team).
 */
#include "common.h"

#include <omp.h>

static long done;

static void task_body(double us)
{
    if (us > 0) spin(us);
#pragma omp atomic
    done++;
}

int main(int argc, char **argv)
{
    if (argc != 3) return 2;
    long n = atol(argv[2]);
    const char *w = argv[1];
    double us = !strcmp(w, "spin100") ? 100 : !strcmp(w, "spin1000") ? 1000 : 0;
    int known = us > 0 || !strcmp(w, "empty") || !strcmp(w, "roundtrip");
    if (!known) return 2;
    omp_set_num_threads(2);
    double t0 = 0, t1 = 0;
#pragma omp parallel
#pragma omp single
    {
        t0 = now();
        for (long i = 0; i < n; i++) {
#pragma omp task
            task_body(us);
            if (!strcmp(w, "roundtrip")) {
#pragma omp taskwait
            }
        }
#pragma omp taskwait
        t1 = now();
    }
    if (done != n) {
        fprintf(stderr, "openmp: %ld of %ld tasks ran\n", done, n);
        return 1;
    }
    if (us > 0) report("openmp", w, n * us * 1e-6 / 2 / (t1 - t0));
    else if (!strcmp(w, "empty")) report("openmp", w, n / (t1 - t0));
    else report("openmp", w, (t1 - t0) / n * 1e6);
    return 0;
}
