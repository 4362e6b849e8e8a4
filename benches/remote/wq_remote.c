/*
 * Work Queue (cctools) running N empty commands (`true`) on 2 workers of 1 core
 * each on loopback, fed while work_queue_hungry() says so. Prints tasks per second.
 * The workers are started by the script (work_queue_worker) on the port printed
 * on the first line.
 */
#include "work_queue.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 5000;
    struct work_queue *q = work_queue_create(0);
    if (!q) {
        fprintf(stderr, "wq_remote: cannot create a queue\n");
        return 1;
    }
    printf("port %d\n", work_queue_port(q));
    fflush(stdout);
    /* Warm up until both workers are connected. */
    struct work_queue_stats s;
    do {
        work_queue_get_stats(q, &s);
        struct work_queue_task *w = work_queue_wait(q, 1);
        if (w) work_queue_task_delete(w);
    } while (s.workers_connected < 2);

    double t0 = now();
    int submitted = 0, done = 0;
    while (done < n) {
        while (submitted < n && work_queue_hungry(q)) {
            struct work_queue_task *t = work_queue_task_create("true");
            work_queue_task_specify_cores(t, 1);
            work_queue_submit(q, t);
            submitted++;
        }
        struct work_queue_task *t = work_queue_wait(q, 5);
        if (t) {
            if (t->result != WORK_QUEUE_RESULT_SUCCESS || t->return_status != 0) {
                fprintf(stderr, "wq_remote: task %d failed\n", t->taskid);
                return 1;
            }
            work_queue_task_delete(t);
            done++;
        }
    }
    printf("workqueue commands_per_s %.0f\n", done / (now() - t0));
    work_queue_delete(q);
    return 0;
}
