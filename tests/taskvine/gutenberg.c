/* Every pair of books from a web server compared by a shell script shipped as
 * a buffer (it must arrive executable). The books are cached FOREVER at the
 * workers: each is downloaded once per worker, whatever the number of tasks
 * (the harness counts the requests). Each task's output is checked. */
#include "taskvine.h"
#include "common.h"

#include <errno.h>
#include <unistd.h>

#define BOOKS 5

static const char *compare_script =
	"#!/bin/sh\n"
	"# the word counts of the two books given\n"
	"a=$(wc -w < \"$1\")\n"
	"b=$(wc -w < \"$2\")\n"
	"echo \"$((a + 0)) $((b + 0))\"\n";

int main(void)
{
	struct vine_manager *m = vine_create(tv_port());
	if(!m) {
		printf("couldn't create manager: %s\n", strerror(errno));
		return 1;
	}
	printf("listening on port %d\n", vine_port(m));
	fflush(stdout);

	struct vine_file *script = vine_declare_buffer(m, compare_script, strlen(compare_script), VINE_CACHE_LEVEL_WORKFLOW, 0);
	struct vine_file *files[BOOKS];
	for(int i = 0; i < BOOKS; i++) {
		char name[64];
		snprintf(name, sizeof name, "book%d.txt", i);
		files[i] = vine_declare_url(m, tv_url(name), VINE_CACHE_LEVEL_FOREVER, 0);
		if(!files[i]) {
			printf("cannot declare %s: %s\n", name, vine_last_error());
			return 1;
		}
	}

	char expected[BOOKS * BOOKS + 1][64];
	for(int i = 0; i < BOOKS; i++) {
		for(int j = 0; j < BOOKS; j++) {
			struct vine_task *t = vine_task_create("./vine_example_gutenberg_script.sh filea.txt fileb.txt");
			vine_task_add_input(t, script, "vine_example_gutenberg_script.sh", 0);
			vine_task_add_input(t, files[i], "filea.txt", 0);
			vine_task_add_input(t, files[j], "fileb.txt", 0);
			vine_task_set_cores(t, 1);
			int id = vine_submit(m, t);
			if(id <= 0 || id > BOOKS * BOOKS) {
				printf("submit gave id %d: %s\n", id, vine_last_error());
				return 1;
			}
			printf("submitted task (id# %d): %s\n", id, vine_task_get_command(t));
			snprintf(expected[id], sizeof expected[id], "%d %d\n", 100 * (i + 1), 100 * (j + 1));
		}
	}

	int right = 0;
	while(!vine_empty(m)) {
		struct vine_task *t = vine_wait(m, 5);
		if(!t) continue;
		vine_result_t r = vine_task_get_result(t);
		int id = vine_task_get_id(t);
		const char *out = vine_task_get_stdout(t);
		if(r != VINE_RESULT_SUCCESS || vine_task_get_exit_code(t) != 0) {
			tv_fail("task %d: %s, exit %d: %s", id, vine_result_string(r), vine_task_get_exit_code(t), out ? out : "");
		} else if(!out || strcmp(out, expected[id]) != 0) {
			tv_fail("task %d output %s, not %s", id, out ? out : "(null)", expected[id]);
		} else {
			right++;
		}
		vine_task_delete(t);
	}
	if(right != BOOKS * BOOKS) tv_fail("%d of %d tasks right", right, BOOKS * BOOKS);
	vine_delete(m);
	return tv_finish("gutenberg");
}
