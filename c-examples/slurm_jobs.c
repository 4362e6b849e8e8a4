/*
 * Workers from Slurm: a factory submits worker jobs while tasks wait, at most two at
 * a time, and vine_delete gives them back. Each task reports the Slurm job it ran in.
 * Run it where sbatch works (make slurm-up brings up a single-node Slurm); the worker
 * program is $VINE_WORKER_PATH, else vine_worker beside this program or on the PATH.
 */
#include "vine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TASKS 20

int main(void)
{
    struct vine_manager *m = vine_create(0);
    if (!m) {
        fprintf(stderr, "slurm_jobs: %s\n", vine_last_error());
        return 1;
    }
    vine_tune(m, "local-cores", 0); /* every task in a Slurm job */

    /* The four lines that get workers from Slurm. */
    struct vine_factory *f = vine_factory_create(m, "slurm");
    if (!f || vine_factory_set(f, "max-workers", 2) != 0 || vine_factory_set(f, "cores", 1) != 0 ||
        vine_factory_set_string(f, "batch-options", "--job-name=vine-example") != 0) {
        fprintf(stderr, "slurm_jobs: %s\n", vine_last_error());
        return 1;
    }

    for (int i = 0; i < TASKS; i++)
        vine_submit(m, vine_task_create("echo $SLURM_JOB_ID"));
    char jobs[TASKS][32];
    int njobs = 0, ok = 0;
    for (int i = 0; i < TASKS; i++) {
        struct vine_task *t = vine_wait(m, 300);
        if (!t) {
            fprintf(stderr, "slurm_jobs: no result: %s\n", vine_last_error());
            return 1;
        }
        const char *out = vine_task_get_stdout(t);
        if (vine_task_get_result(t) == VINE_RESULT_SUCCESS && out && out[0] >= '0' && out[0] <= '9') {
            ok++;
            int seen = 0;
            for (int j = 0; j < njobs; j++)
                seen |= strncmp(jobs[j], out, sizeof jobs[j]) == 0;
            if (!seen && njobs < TASKS)
                snprintf(jobs[njobs++], sizeof jobs[0], "%s", out);
        }
        vine_task_delete(t);
    }
    printf("%d of %d tasks ran inside %d Slurm job(s)\n", ok, TASKS, njobs);
    vine_delete(m); /* cancels the factory's jobs and waits until Slurm lists none */
    return ok == TASKS && njobs >= 1 && njobs <= 2 ? 0 : 1;
}
