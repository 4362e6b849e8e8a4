/* A search tool and its database, each a tarball on a web server, unpacked at
 * the worker and shared by every task there; a query per task in a buffer.
 * Uses what a TaskVine BLAST workflow uses: URLs, untar, FOREVER caching,
 * monitoring, peer transfers, environment variables. Each task's output is
 * checked against what its query must give. */
#include "taskvine.h"
#include "common.h"

#include <errno.h>
#include <unistd.h>

#define TASK_COUNT 20
#define QUERY_COUNT 4
#define QUERY_LENGTH 32
#define DB_LINES 100

static const char *letters = "ACGTUiRYKMSWBDHVN";

/* A query of QUERY_COUNT sequences; its first sequence is copied to first. */
static char *make_query(unsigned seed, char *first)
{
	size_t size = (strlen(">query\n") + QUERY_LENGTH + 1) * QUERY_COUNT + 1;
	char *q = malloc(size);
	char *p = q;
	for(int s = 0; s < QUERY_COUNT; s++) {
		p += sprintf(p, ">query\n");
		for(int i = 0; i < QUERY_LENGTH; i++) {
			seed = seed * 1103515245u + 12345u;
			*p++ = letters[(seed >> 16) % strlen(letters)];
		}
		if(s == 0) {
			memcpy(first, p - QUERY_LENGTH, QUERY_LENGTH);
			first[QUERY_LENGTH] = 0;
		}
		*p++ = '\n';
	}
	*p = 0;
	return q;
}

int main(void)
{
	struct vine_manager *m = vine_create(tv_port());
	if(!m) {
		printf("couldn't create manager: %s\n", strerror(errno));
		return 1;
	}
	printf("listening on port %d\n", vine_port(m));
	fflush(stdout);

	vine_set_name(m, "blast-example");
	vine_enable_monitoring(m, 1, 0);
	vine_enable_peer_transfers(m);

	struct vine_file *blast_url = vine_declare_url(m, tv_url("blast.tar.gz"), VINE_CACHE_LEVEL_FOREVER, 0);
	struct vine_file *landm_url = vine_declare_url(m, tv_url("landmark.tar.gz"), VINE_CACHE_LEVEL_FOREVER, 0);
	struct vine_file *software = vine_declare_untar(m, blast_url, VINE_CACHE_LEVEL_FOREVER, 0);
	struct vine_file *database = vine_declare_untar(m, landm_url, VINE_CACHE_LEVEL_FOREVER, 0);
	if(!blast_url || !landm_url || !software || !database) {
		printf("cannot declare the files: %s\n", vine_last_error());
		return 1;
	}

	char expected[TASK_COUNT + 1][128];
	for(int i = 0; i < TASK_COUNT; i++) {
		struct vine_task *t = vine_task_create("blastdir/ncbi-blast-2.13.0+/bin/blastp -db landmark -query query.file");
		char first[QUERY_LENGTH + 1];
		char *query = make_query(i + 1, first);
		struct vine_file *qf = vine_declare_buffer(m, query, strlen(query), VINE_CACHE_LEVEL_TASK, 0);
		free(query);
		vine_task_add_input(t, qf, "query.file", 0);
		vine_task_add_input(t, software, "blastdir", 0);
		vine_task_add_input(t, database, "landmark", 0);
		vine_task_set_env_var(t, "BLASTDB", "landmark");
		vine_task_set_cores(t, 1);
		int id = vine_submit(m, t);
		if(id <= 0 || id > TASK_COUNT) {
			printf("submit gave id %d: %s\n", id, vine_last_error());
			return 1;
		}
		const char *cmd = vine_task_get_command(t);
		printf("submitted task (id# %d): %s\n", id, cmd ? cmd : "(null)");
		if(!cmd) tv_fail("the command of submitted task %d reads as NULL", id);
		snprintf(expected[id], sizeof expected[id], "queries=%d db=%d first=%s\n", QUERY_COUNT, DB_LINES, first);
	}

	int done = 0;
	while(!vine_empty(m)) {
		struct vine_task *t = vine_wait(m, 5);
		if(!t) continue;
		vine_result_t r = vine_task_get_result(t);
		int id = vine_task_get_id(t);
		const char *out = vine_task_get_stdout(t);
		if(r != VINE_RESULT_SUCCESS) {
			tv_fail("task %d: %s (%s)", id, vine_result_string(r), vine_task_get_reason(t));
		} else if(vine_task_get_exit_code(t) != 0) {
			tv_fail("task %d exited %d: %s", id, vine_task_get_exit_code(t), out ? out : "");
		} else if(!out || strcmp(out, expected[id]) != 0) {
			tv_fail("task %d output %s, not %s", id, out ? out : "(null)", expected[id]);
		} else {
			done++;
		}
		vine_task_delete(t);
	}
	if(done != TASK_COUNT) tv_fail("%d of %d tasks right", done, TASK_COUNT);
	vine_delete(m);
	return tv_finish("blast");
}
