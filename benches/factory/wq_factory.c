/*
 * Work Queue with its own factory (work_queue_factory, started by run.sh): a
 * manager named PROJECT reporting to the catalog at CATALOG_HOST:CATALOG_PORT
 * runs N `true` commands. Prints, in seconds, the time from the first submit to
 * the first task running (when it was sent to a worker), and to the last result.
 *
 *   wq_factory PROJECT N CATALOG_HOST CATALOG_PORT
 */
#include "work_queue.h"

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
    if (argc != 5) {
        fprintf(stderr, "usage: wq_factory PROJECT N CATALOG_HOST CATALOG_PORT\n");
        return 2;
    }
    int n = atoi(argv[2]);
    struct work_queue *q = work_queue_create(0);
    if (!q) {
        fprintf(stderr, "wq_factory: cannot create a queue\n");
        return 1;
    }
    work_queue_specify_catalog_server(q, argv[3], atoi(argv[4]));
    work_queue_specify_name(q, argv[1]);
    double t0 = now();
    for (int i = 0; i < n; i++) {
        struct work_queue_task *t = work_queue_task_create("true");
        work_queue_task_specify_cores(t, 1);
        work_queue_submit(q, t);
    }
    double first = 1e300;
    int done = 0;
    while (done < n) {
        struct work_queue_task *t = work_queue_wait(q, 5);
        if (!t) {
            if (now() - t0 > 900) {
                fprintf(stderr, "wq_factory: no result in 900 s\n");
                return 1;
            }
            continue;
        }
        if (t->result != WORK_QUEUE_RESULT_SUCCESS || t->return_status != 0) {
            fprintf(stderr, "wq_factory: task %d failed\n", t->taskid);
            return 1;
        }
        double started = t->time_when_commit_start / 1e6;
        if (started < first) first = started;
        work_queue_task_delete(t);
        done++;
    }
    printf("first %.3f total %.3f\n", first - t0, now() - t0);
    work_queue_delete(q);
    return 0;
}
