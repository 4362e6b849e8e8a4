/*
 * vine's factory: N `true` commands on workers a factory of BATCH_TYPE ("slurm"
 * or "local") submits, at most MAX workers of 1 core. Prints, in seconds: the
 * time from the first submit to the first task running (its start as the worker
 * reports it), and to the last result.
 *
 *   vine_factory BATCH_TYPE N MAX      (the worker: VINE_WORKER_PATH)
 */
#include "vine.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: vine_factory BATCH_TYPE N MAX\n");
        return 2;
    }
    int n = atoi(argv[2]);
    struct vine_manager *m = vine_create(0);
    if (!m || vine_tune(m, "local-cores", 0) != 0) {
        fprintf(stderr, "vine_factory: %s\n", vine_last_error());
        return 1;
    }
    struct vine_factory *f = vine_factory_create(m, argv[1]);
    if (!f || vine_factory_set(f, "max-workers", atof(argv[3])) != 0 ||
        vine_factory_set(f, "cores", 1) != 0) {
        fprintf(stderr, "vine_factory: %s\n", vine_last_error());
        return 1;
    }
    double t0 = now();
    for (int i = 0; i < n; i++) {
        struct vine_task *t = vine_task_create("true");
        vine_task_set_cores(t, 1);
        if (vine_submit(m, t) <= 0) {
            fprintf(stderr, "vine_factory: %s\n", vine_last_error());
            return 1;
        }
    }
    double first = 1e300;
    for (int done = 0; done < n; done++) {
        struct vine_task *t = vine_wait(m, 600);
        if (!t) {
            fprintf(stderr, "vine_factory: no result: %s\n", vine_last_error());
            return 1;
        }
        if (vine_task_get_result(t) != VINE_RESULT_SUCCESS || vine_task_get_exit_code(t) != 0) {
            fprintf(stderr, "vine_factory: task %d failed\n", vine_task_get_id(t));
            return 1;
        }
        double started = vine_task_get_metric(t, "time_when_commit_start") / 1e6;
        if (started < first) first = started;
        vine_task_delete(t);
    }
    double end = now();
    printf("first %.3f total %.3f\n", first - t0, end - t0);
    vine_factory_delete(f);
    vine_delete(m);
    return 0;
}
