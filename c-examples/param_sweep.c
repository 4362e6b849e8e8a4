/*
 * A parameter sweep: estimate pi by midpoint quadrature of 4/(1+x^2) over [0,1]
 * for a grid of step counts and interval splits. Each task integrates one slice;
 * tasks ask for different cores and memory, the finest grids get a higher priority,
 * and the program feeds the manager only while it is hungry.
 */
#include "vine.h"

#include <math.h>

#define PI 3.14159265358979323846
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct slice {
    double a, b;   /* interval */
    long steps;    /* midpoints in it */
    int config;    /* which (steps, slices) configuration it belongs to */
};

static int integrate(const void *input, size_t len, struct vine_buffer *output, void *context)
{
    (void)context;
    struct slice s;
    if (len != sizeof s) return 1;
    memcpy(&s, input, sizeof s);
    double h = (s.b - s.a) / (double)s.steps, sum = 0;
    for (long i = 0; i < s.steps; i++) {
        double x = s.a + (i + 0.5) * h;
        sum += 4.0 / (1.0 + x * x);
    }
    double part = sum * h;
    return vine_buffer_append(output, &part, sizeof part);
}

#define STEPS 4
#define SPLITS 3
static const long steps[STEPS] = {1000, 10000, 100000, 1000000};
static const int splits[SPLITS] = {1, 4, 16};

int main(void)
{
    vine_register_function("integrate", integrate);
    struct vine_manager *m = vine_create(VINE_PORT_NONE);
    if (!m) {
        fprintf(stderr, "vine_create: %s\n", vine_last_error());
        return 1;
    }
    double estimate[STEPS * SPLITS] = {0};
    int pending = 0, next = 0, total_slices = 0;
    for (int c = 0; c < STEPS * SPLITS; c++) total_slices += splits[c % SPLITS];

    /* Submit slices while the manager is hungry, collect results as they finish. */
    int c = 0, k = 0;
    while (next < total_slices || pending > 0) {
        while (next < total_slices && vine_hungry(m) > 0) {
            int n = splits[c % SPLITS];
            struct slice s = {(double)k / n, (double)(k + 1) / n, steps[c / SPLITS] / n, c};
            struct vine_task *t = vine_task_create_function("integrate", &s, sizeof s);
            vine_task_set_cores(t, n == 1 ? 1.0 : 0.5);      /* small slices share a core */
            vine_task_set_memory(t, 10 * n);                   /* MB: accounted, not enforced for threads */
            vine_task_set_priority(t, (double)(c / SPLITS));   /* finest grids first */
            vine_task_set_category(t, n == 1 ? "whole" : "sliced");
            char tag[32];
            snprintf(tag, sizeof tag, "%d", c);
            vine_task_set_tag(t, tag);
            if (!vine_submit(m, t)) {
                fprintf(stderr, "submit: %s\n", vine_last_error());
                return 1;
            }
            pending++;
            next++;
            if (++k == n) { k = 0; c++; }
        }
        struct vine_task *t = vine_wait(m, VINE_WAIT_FOREVER);
        if (!t) break;
        size_t len;
        const double *part = vine_task_get_output(t, &len);
        if (vine_task_get_result(t) != VINE_RESULT_SUCCESS || len != sizeof *part) {
            fprintf(stderr, "task %d: %s\n", vine_task_get_id(t), vine_result_string(vine_task_get_result(t)));
            return 1;
        }
        estimate[atoi(vine_task_get_tag(t))] += *part;
        vine_task_delete(t);
        pending--;
    }

    struct vine_stats st;
    vine_get_stats(m, &st);
    vine_delete(m);

    int ok = 1;
    printf("%10s %7s %16s %10s\n", "steps", "slices", "pi estimate", "error");
    for (int i = 0; i < STEPS * SPLITS; i++) {
        double err = fabs(estimate[i] - PI);
        /* Midpoint rule: error about 1/(6 n^2) for this integrand. */
        double bound = 1.0 / (double)steps[i / SPLITS] / (double)steps[i / SPLITS];
        ok &= err < bound;
        printf("%10ld %7d %16.12f %10.2e %s\n", steps[i / SPLITS], splits[i % SPLITS], estimate[i], err,
               err < bound ? "ok" : "WRONG");
    }
    printf("%d tasks on %lld local cores\n", st.tasks_done, (long long)st.total_cores);
    return ok ? 0 : 1;
}
