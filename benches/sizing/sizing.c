/* Tasks that declare nothing but use a known amount (hog: 200 MB, a little CPU,
 * then held a while), on the workers already connected to PORT, sized three
 * ways:
 *   auto     VINE_ALLOCATION_MODE_MAX_THROUGHPUT on their category (measured)
 *   whole    a whole worker per task (TaskVine's default for undeclared tasks),
 *            as the category's maximum in FIXED mode
 *   default  vine's default: one core, no memory bound
 * Prints the makespan, the most tasks running at once, and what the last task
 * was allocated. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "taskvine.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    if (argc != 8) {
        fprintf(stderr, "usage: %s auto|whole|default PORT WORKERS TASKS HOG MB CPU_MS\n", argv[0]);
        return 2;
    }
    const char *mode = argv[1];
    int port = atoi(argv[2]), workers = atoi(argv[3]), n = atoi(argv[4]);
    if (n < 1 || n > 1000000) {
        fprintf(stderr, "TASKS must be 1..1000000\n");
        return 2;
    }
    size_t count = (size_t)n;
    const char *hog = argv[5];
    int mb = atoi(argv[6]), cpu_ms = atoi(argv[7]);
    struct vine_manager *m = vine_create(port);
    if (!m) {
        fprintf(stderr, "%s\n", vine_last_error());
        return 1;
    }
    vine_tune(m, "local-cores", 0);
    vine_tune(m, "wait-for-workers", workers);
    vine_tune(m, "category-steady-n-tasks", 4);
    if (!strcmp(mode, "auto")) {
        vine_enable_monitoring(m, 1, 0);
        vine_set_category_mode(m, "hog", VINE_ALLOCATION_MODE_MAX_THROUGHPUT);
    } else if (!strcmp(mode, "whole")) {
        struct rmsummary *r = rmsummary_create(-1);
        r->cores = 4;
        r->memory = 1024;
        r->disk = 4096;
        vine_set_category_resources_max(m, "hog", r);
        rmsummary_delete(r);
    }
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s %d %d 1000", hog, mb, cpu_ms);
    double t0 = now();
    for (int i = 0; i < n; i++) {
        struct vine_task *t = vine_task_create(cmd);
        vine_task_set_category(t, "hog");
        if (vine_submit(m, t) <= 0) {
            fprintf(stderr, "%s\n", vine_last_error());
            return 1;
        }
    }
    int64_t *start = calloc(count, sizeof *start), *end = calloc(count, sizeof *end);
    int failed = 0, retried = 0;
    double last_cores = 0, last_memory = 0;
    for (int i = 0; i < n; i++) {
        struct vine_task *t = vine_wait(m, 600);
        if (!t) {
            fprintf(stderr, "wait: %s\n", vine_last_error());
            return 1;
        }
        if (vine_task_get_result(t) != VINE_RESULT_SUCCESS || vine_task_get_exit_code(t) != 0)
            failed++;
        start[i] = vine_task_get_metric(t, "time_when_commit_start");
        end[i] = vine_task_get_metric(t, "time_when_done");
        const struct rmsummary *a = vine_task_get_resources(t, "allocated");
        if (getenv("SIZING_VERBOSE"))
            fprintf(stderr, "task %d start %.3f end %.3f cores %g memory %g\n", vine_task_get_id(t),
                    (start[i] - start[0]) / 1e6, (end[i] - start[0]) / 1e6, a ? a->cores : -1,
                    a ? a->memory : -1);
        if (a) {
            last_cores = a->cores;
            last_memory = a->memory;
        }
        vine_task_delete(t);
    }
    double makespan = now() - t0;
    struct vine_stats s;
    vine_get_stats_category(m, "hog", &s);
    retried = s.tasks_exhausted_attempts;
    /* The most tasks running at once: sweep over starts and ends. */
    int peak = 0;
    for (int i = 0; i < n; i++) {
        int at = 0;
        for (int j = 0; j < n; j++)
            if (start[j] <= start[i] && end[j] > start[i])
                at++;
        if (at > peak)
            peak = at;
    }
    printf("%s makespan_s %.3f peak_running %d failed %d exhausted %d last_cores %g last_memory_mb %g\n",
           mode, makespan, peak, failed, retried, last_cores, last_memory);
    free(start);
    free(end);
    vine_delete(m);
    return failed != 0;
}
