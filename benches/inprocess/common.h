/* What the in-process benchmarks share: the clock, the spin, the report line. */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static inline double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

/* Busy work for `us` microseconds. */
static inline void spin(double us)
{
    double end = now() + us * 1e-6;
    while (now() < end) {
    }
}

/* One line: RUNTIME WORKLOAD VALUE. */
static inline void report(const char *runtime, const char *workload, double value)
{
    printf("%s %s %.6g\n", runtime, workload, value);
}
#endif
