/* A benchmark driven by lines on standard input, as TaskVine's benchmark tool
 * is: "submit I T O N [category]" submits N tasks that read an I MB input, run
 * T seconds and write an O MB output; "wait" waits for all; "quit" ends. -m
 * turns on monitoring and automatic sizing of the categories, -p PORT, -Z FILE
 * (write the port there), -N NAME. Every output must come back at its size. */
#include "taskvine.h"
#include "common.h"

#include <errno.h>
#include <getopt.h>
#include <unistd.h>

#define MAX_TASKS 1000

static int ntasks = 0;
static int out_size[MAX_TASKS];

static void submit_tasks(struct vine_manager *q, int input_size, int run_time, int output_size, int count, const char *category)
{
	char input_file[128], output_file[128], command[256], gen[256];
	sprintf(input_file, "input.%d", ntasks);
	sprintf(gen, "dd if=/dev/zero of=%s bs=1048576 count=%d 2>/dev/null", input_file, input_size);
	if(system(gen) != 0) tv_fail("cannot make %s", input_file);
	struct vine_file *input = vine_declare_file(q, input_file, VINE_CACHE_LEVEL_WORKFLOW, 0);
	for(int i = 0; i < count && ntasks < MAX_TASKS; i++) {
		sprintf(output_file, "output.%d", ntasks);
		sprintf(command, "test $(wc -c < infile) = %d && dd if=/dev/zero of=outfile bs=1048576 count=%d; sleep %d",
			input_size * 1048576, output_size, run_time);
		struct vine_file *output = vine_declare_file(q, output_file, VINE_CACHE_LEVEL_TASK, VINE_PEER_NOSHARE);
		out_size[ntasks++] = output_size;
		struct vine_task *t = vine_task_create(command);
		vine_task_add_input(t, input, "infile", 0);
		vine_task_add_output(t, output, "outfile", 0);
		vine_task_set_cores(t, 1);
		if(category && strlen(category) > 0) vine_task_set_category(t, category);
		vine_submit(q, t);
	}
}

static void wait_for_all_tasks(struct vine_manager *q)
{
	while(!vine_empty(q)) {
		struct vine_task *t = vine_wait(q, 5);
		if(!t) continue;
		if(vine_task_get_result(t) != VINE_RESULT_SUCCESS || vine_task_get_exit_code(t) != 0)
			tv_fail("task %d: %s, exit %d", vine_task_get_id(t), vine_result_string(vine_task_get_result(t)),
				vine_task_get_exit_code(t));
		vine_task_delete(t);
	}
}

int main(int argc, char *argv[])
{
	int port = VINE_DEFAULT_PORT, monitor = 0, c;
	const char *port_file = NULL, *name = NULL;
	while((c = getopt(argc, argv, "mZ:p:N:")) != -1) {
		switch(c) {
		case 'm': monitor = 1; break;
		case 'Z': port_file = optarg; break;
		case 'p': port = atoi(optarg); break;
		case 'N': name = optarg; break;
		default: return 1;
		}
	}
	struct vine_manager *q = vine_create(port);
	if(!q) {
		printf("couldn't create manager: %s\n", strerror(errno));
		return 1;
	}
	printf("listening on port %d\n", vine_port(q));
	fflush(stdout);
	if(port_file) {
		FILE *f = fopen(port_file, "w");
		if(f) {
			fprintf(f, "%d\n", vine_port(q));
			fclose(f);
		}
	}
	if(name) vine_set_name(q, name);
	if(monitor) {
		vine_enable_monitoring(q, 1, 0);
		vine_set_category_mode(q, NULL, VINE_ALLOCATION_MODE_MAX_THROUGHPUT);
	}

	char line[1024], category[1024];
	int input_size, run_time, output_size, count;
	while(fgets(line, sizeof line, stdin)) {
		if(line[0] == '#') continue;
		line[strcspn(line, "\n")] = 0;
		strcpy(category, "default");
		if(!strcmp(line, "wait")) {
			wait_for_all_tasks(q);
		} else if(sscanf(line, "submit %d %d %d %d %1000s", &input_size, &run_time, &output_size, &count, category) >= 4) {
			submit_tasks(q, input_size, run_time, output_size, count, category);
		} else if(!strcmp(line, "quit") || !strcmp(line, "exit")) {
			break;
		} else {
			fprintf(stderr, "ignoring badly formatted line: %s\n", line);
		}
	}
	wait_for_all_tasks(q);
	vine_delete(q);

	for(int i = 0; i < ntasks; i++) {
		char output_file[128];
		sprintf(output_file, "output.%d", i);
		if(tv_size(output_file) != (long)out_size[i] * 1048576)
			tv_fail("%s is %ld bytes, not %d MB", output_file, tv_size(output_file), out_size[i]);
	}
	if(ntasks == 0) tv_fail("no task was submitted");
	return tv_finish(monitor ? "benchmark -m" : "benchmark");
}
