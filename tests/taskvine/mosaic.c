/* An image from a web server transformed by 36 tasks into 36 temps (kept at
 * the workers that made them), then one task that reads all 36 (from wherever
 * they are) and writes the mosaic back. The tools are scripts on the manager's
 * disk made executable there: their mode must travel with them. */
#include "taskvine.h"
#include "common.h"

#include <errno.h>
#include <unistd.h>

#define PIECES 36

static void write_tool(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	if(!f) {
		perror(path);
		exit(1);
	}
	fputs(text, f);
	fclose(f);
	chmod(path, 0755);
}

int main(void)
{
	/* "convert -swirl N in out": records N and the size of what it read. */
	write_tool("convert.sfx", "#!/bin/sh\necho \"swirl $2 $(($(wc -c < \"$3\") + 0))\" > \"$4\"\n");
	/* "montage in... -tile .. -geometry .. out": concatenates its inputs. */
	write_tool("montage.sfx",
		"#!/bin/sh\nout=\nfor a in \"$@\"; do out=$a; done\n"
		": > \"$out\"\nfor a in \"$@\"; do case $a in *.cat.jpg) cat \"$a\" >> \"$out\";; esac; done\n");
	long image_size = atol(getenv("TV_CAT_SIZE") ? getenv("TV_CAT_SIZE") : "0");

	struct vine_manager *m = vine_create(tv_port());
	if(!m) {
		printf("Couldn't create manager: %s\n", strerror(errno));
		return 1;
	}
	printf("listening on port %d\n", vine_port(m));
	fflush(stdout);
	vine_enable_peer_transfers(m);

	struct vine_file *convert = vine_declare_file(m, "convert.sfx", VINE_CACHE_LEVEL_WORKFLOW, 0);
	struct vine_file *image = vine_declare_url(m, tv_url("A-Cat.jpg"), VINE_CACHE_LEVEL_WORKFLOW, 0);
	struct vine_file *temp_file[PIECES];
	for(int i = 0; i < PIECES; i++) {
		char outfile[256], command[1024];
		sprintf(outfile, "%d.cat.jpg", i);
		sprintf(command, "./convert.sfx -swirl %d cat.jpg %d.cat.jpg", i * 10, i);
		temp_file[i] = vine_declare_temp(m);
		struct vine_task *t = vine_task_create(command);
		vine_task_add_input(t, convert, "convert.sfx", 0);
		vine_task_add_input(t, image, "cat.jpg", 0);
		vine_task_add_output(t, temp_file[i], outfile, 0);
		vine_task_set_cores(t, 1);
		int id = vine_submit(m, t);
		printf("Submitted task (id# %d): %s\n", id, vine_task_get_command(t));
	}
	while(!vine_empty(m)) {
		struct vine_task *t = vine_wait(m, 5);
		if(!t) continue;
		vine_result_t r = vine_task_get_result(t);
		if(r != VINE_RESULT_SUCCESS || vine_task_get_exit_code(t) != 0)
			tv_fail("task %d: %s, exit %d", vine_task_get_id(t), vine_result_string(r), vine_task_get_exit_code(t));
		vine_task_delete(t);
	}

	struct vine_task *t = vine_task_create("./montage.sfx `ls *.cat.jpg | sort -n` -tile 6x6 -geometry 128x128+0+0 mosaic.jpg");
	for(int i = 0; i < PIECES; i++) {
		char filename[256];
		sprintf(filename, "%d.cat.jpg", i);
		vine_task_add_input(t, temp_file[i], filename, 0);
	}
	vine_task_add_input(t, vine_declare_file(m, "montage.sfx", VINE_CACHE_LEVEL_WORKFLOW, 0), "montage.sfx", 0);
	vine_task_add_output(t, vine_declare_file(m, "mosaic.jpg", VINE_CACHE_LEVEL_TASK, 0), "mosaic.jpg", 0);
	int id = vine_submit(m, t);
	printf("Submitted task (id# %d): %s\n", id, vine_task_get_command(t));
	t = vine_wait(m, VINE_WAIT_FOREVER);
	if(!t || vine_task_get_result(t) != VINE_RESULT_SUCCESS || vine_task_get_exit_code(t) != 0)
		tv_fail("the montage task failed");
	vine_task_delete(t);
	vine_delete(m);

	char expected[PIECES * 32 + 1] = "";
	for(int i = 0; i < PIECES; i++)
		sprintf(expected + strlen(expected), "swirl %d %ld\n", i * 10, image_size);
	char *mosaic = tv_slurp("mosaic.jpg");
	if(!mosaic)
		tv_fail("no mosaic.jpg");
	else if(strcmp(mosaic, expected) != 0)
		tv_fail("mosaic.jpg holds:\n%s", mosaic);
	free(mosaic);
	return tv_finish("mosaic");
}
