/* Outputs watched while their tasks run (VINE_WATCH): each task writes a first
 * line, then waits for a mark that this program makes only once it has seen
 * that line in the task's output file here, on the manager's side. Without the
 * output coming back while the task runs, the tasks would wait for their marks
 * until they give up and fail. The whole output is checked at the end. */
#include "taskvine.h"
#include "common.h"

#include <errno.h>
#include <time.h>
#include <unistd.h>

#define TASKS 4

static const char *script =
	"#!/bin/sh\n"
	"echo start\n"
	"i=0\n"
	"while [ ! -e \"$MARK\" ]; do\n"
	"  i=$((i + 1)); if [ $i -gt 1800 ]; then echo 'no mark'; exit 3; fi\n"
	"  sleep 0.1\n"
	"done\n"
	"for n in 1 2 3; do echo \"line $n\"; done\n"
	"echo 'done!'\n";

int main(void)
{
	const char *markdir = getenv("TV_MARKS");
	if(!markdir) markdir = ".";
	struct vine_manager *m = vine_create(tv_port());
	if(!m) {
		printf("Couldn't create manager: %s\n", strerror(errno));
		return 1;
	}
	printf("listening on port %d\n", vine_port(m));
	fflush(stdout);

	struct vine_file *scriptfile = vine_declare_buffer(m, script, strlen(script), VINE_CACHE_LEVEL_WORKFLOW, 0);
	char marks[TASKS][1024];
	for(int i = 0; i < TASKS; i++) {
		char output_name[256];
		sprintf(output_name, "output.%d", i);
		snprintf(marks[i], sizeof marks[i], "%s/mark.%d", markdir, i);
		struct vine_file *output_file = vine_declare_file(m, output_name, VINE_CACHE_LEVEL_WORKFLOW, 0);
		struct vine_task *t = vine_task_create("./trickle.sh > output");
		vine_task_add_input(t, scriptfile, "trickle.sh", 0);
		vine_task_add_output(t, output_file, "output", VINE_WATCH);
		vine_task_set_env_var(t, "MARK", marks[i]);
		vine_task_set_cores(t, 1);
		vine_submit(m, t);
	}

	/* Make each task's mark once its first line is here (a bound of three
	 * minutes in all, after which the marks are made anyway and it fails). */
	int seen[TASKS] = {0}, nseen = 0;
	time_t give_up = time(NULL) + 180;
	while(nseen < TASKS && time(NULL) < give_up) {
		for(int i = 0; i < TASKS; i++) {
			char name[64];
			sprintf(name, "output.%d", i);
			char *now = seen[i] ? NULL : tv_slurp(name);
			if(now && strncmp(now, "start\n", 6) == 0) {
				FILE *f = fopen(marks[i], "w");
				if(f) fclose(f);
				seen[i] = 1;
				nseen++;
				printf("saw output.%d while its task ran\n", i);
			}
			free(now);
		}
		usleep(20000);
	}
	if(nseen < TASKS) {
		tv_fail("only %d of %d watched outputs came back while their tasks ran", nseen, TASKS);
		for(int i = 0; i < TASKS; i++) {
			FILE *f = fopen(marks[i], "w");
			if(f) fclose(f);
		}
	}

	while(!vine_empty(m)) {
		struct vine_task *t = vine_wait(m, 5);
		if(!t) continue;
		vine_result_t r = vine_task_get_result(t);
		if(r != VINE_RESULT_SUCCESS || vine_task_get_exit_code(t) != 0)
			tv_fail("task %d: %s, exit %d", vine_task_get_id(t), vine_result_string(r), vine_task_get_exit_code(t));
		vine_task_delete(t);
	}
	vine_delete(m);

	for(int i = 0; i < TASKS; i++) {
		char name[64];
		sprintf(name, "output.%d", i);
		char *all = tv_slurp(name);
		if(!all || strcmp(all, "start\nline 1\nline 2\nline 3\ndone!\n") != 0)
			tv_fail("%s holds %s", name, all ? all : "nothing");
		free(all);
	}
	return tv_finish("watch");
}
