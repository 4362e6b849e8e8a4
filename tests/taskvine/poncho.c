/* A packed environment (a tarball with its own bin/) unpacked at the worker and
 * put in front of each task's command: "python my_script.py" must run the
 * environment's python, not the machine's. Each output is checked. */
#include "taskvine.h"
#include "common.h"

#include <errno.h>
#include <unistd.h>

#define TASKS 5

int main(void)
{
	FILE *f = fopen("script_example_for_poncho.py", "w");
	if(!f) return 1;
	fputs("print('hello from the environment')\n", f);
	fclose(f);

	struct vine_manager *m = vine_create(tv_port());
	if(!m) {
		printf("couldn't create manager: %s\n", strerror(errno));
		return 1;
	}
	printf("listening on port %d\n", vine_port(m));
	fflush(stdout);

	struct vine_file *script = vine_declare_file(m, "script_example_for_poncho.py", VINE_CACHE_LEVEL_WORKFLOW, 0);
	struct vine_file *tarball = vine_declare_url(m, tv_url("package.tar.gz"), VINE_CACHE_LEVEL_WORKFLOW, 0);
	struct vine_file *package = vine_declare_poncho(m, tarball, VINE_CACHE_LEVEL_WORKFLOW, 0);
	if(!script || !tarball || !package) {
		printf("cannot declare the files: %s\n", vine_last_error());
		return 1;
	}
	for(int i = 0; i < TASKS; i++) {
		struct vine_task *task = vine_task_create("python my_script.py");
		vine_task_add_poncho_package(task, package);
		vine_task_add_input(task, script, "my_script.py", 0);
		int id = vine_submit(m, task);
		printf("submitted task (id# %d): %s\n", id, vine_task_get_command(task));
	}
	int right = 0;
	while(!vine_empty(m)) {
		struct vine_task *t = vine_wait(m, 5);
		if(!t) continue;
		const char *out = vine_task_get_stdout(t);
		if(vine_task_get_result(t) != VINE_RESULT_SUCCESS || vine_task_get_exit_code(t) != 0)
			tv_fail("task %d: %s, exit %d: %s", vine_task_get_id(t), vine_result_string(vine_task_get_result(t)),
				vine_task_get_exit_code(t), out ? out : "");
		else if(!out || strcmp(out, "packed python ran: print('hello from the environment')\n") != 0)
			tv_fail("task %d output %s", vine_task_get_id(t), out ? out : "(null)");
		else
			right++;
		vine_task_delete(t);
	}
	if(right != TASKS) tv_fail("%d of %d tasks right", right, TASKS);
	vine_delete(m);
	return tv_finish("poncho");
}
