/*
 * The return values TaskVine documents for the calls whose vine.h values
 * differ (taskvine.h maps them): a program that tests them as TaskVine's
 * manual says must see success as success and failure as failure.
 */
#include "taskvine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;

static void expect(const char *what, int got, int want)
{
	if (got != want) {
		fprintf(stderr, "returns: %s returned %d, TaskVine returns %d (%s)\n", what, got, want,
				vine_last_error());
		failures++;
	}
}

int main(void)
{
	struct vine_manager *m = vine_create(VINE_RANDOM_PORT);
	if (!m) {
		fprintf(stderr, "returns: vine_create: %s\n", vine_last_error());
		return 1;
	}
	char pw[] = "/tmp/vine-tv-returns-XXXXXX";
	int fd = mkstemp(pw);
	FILE *out = fd >= 0 ? fdopen(fd, "w") : NULL;
	if (!out || fputs("sesame\n", out) < 0 || fclose(out) != 0) {
		fprintf(stderr, "returns: cannot write a password file\n");
		return 1;
	}
	expect("vine_set_password_file(a password)", vine_set_password_file(m, pw), 1);
	expect("vine_set_password_file(no such file)", vine_set_password_file(m, "/nonexistent/pw"), 0);
	remove(pw);
	expect("vine_tune(a setting)", vine_tune(m, "max-retries", 3), 0);
	expect("vine_tune(no such setting)", vine_tune(m, "no-such-setting", 1), -1);
	expect("vine_enable_monitoring", vine_enable_monitoring(m, 0, 0), 1);
	expect("vine_enable_proportional_resources", vine_enable_proportional_resources(m), 1);
	expect("vine_disable_proportional_resources", vine_disable_proportional_resources(m), 1);
	expect("vine_enable_proportional_resources(NULL)", vine_enable_proportional_resources(NULL), 0);
	expect("vine_result_string(VINE_RESULT_RMONITOR_ERROR) is MONITOR_ERROR",
			strcmp(vine_result_string(VINE_RESULT_RMONITOR_ERROR), "MONITOR_ERROR"), 0);

	/* The names TaskVine's header has from cctools' timestamp.h and category.h. */
	struct vine_stats s;
	vine_get_stats(m, &s);
	timestamp_t started = s.time_when_started;
	timestamp_t now = timestamp_get();
	expect("timestamp_get() not before the manager started", now >= started, 1);
	category_mode_t mode = CATEGORY_ALLOCATION_MODE_MAX;
	expect("vine_set_category_mode(CATEGORY_ALLOCATION_MODE_MAX)",
			vine_set_category_mode(m, "c", mode), 1);
	category_allocation_t step = CATEGORY_ALLOCATION_FIRST;
	expect("CATEGORY_ALLOCATION_MAX follows CATEGORY_ALLOCATION_FIRST", CATEGORY_ALLOCATION_MAX, step + 1);

	/* The resource monitor's summaries, as TaskVine programs build them. */
	struct rmsummary *r = rmsummary_create(-1);
	expect("rmsummary_create(-1)->signal", (int)r->signal, 0);
	expect("rmsummary_create(-1)->exit_status", (int)r->exit_status, 0);
	expect("rmsummary_create(-1)->cores", (int)r->cores, -1);
	expect("rmsummary_set(cores)", rmsummary_set(r, "cores", 2), 1);
	expect("rmsummary_set(no such resource)", rmsummary_set(r, "no_such_resource", 2), -1);
	expect("rmsummary_get(cores)", (int)rmsummary_get(r, "cores"), 2);
	rmsummary_delete(r);
	time_t block = 60;
	vine_block_host_with_timeout(m, "no-such-host.invalid", block);
	vine_unblock_host(m, "no-such-host.invalid");

	struct vine_file *in = vine_declare_buffer(m, "hello\n", 6, VINE_CACHE_LEVEL_TASK, 0);
	struct vine_file *result = vine_declare_buffer(m, NULL, 0, VINE_CACHE_LEVEL_TASK, 0);
	struct vine_task *t = vine_task_create("cat in.txt > out.txt; exec sleep 60");
	expect("vine_task_add_input", vine_task_add_input(t, in, "in.txt", 0), 1);
	expect("vine_task_add_output", vine_task_add_output(t, result, "out.txt", 0), 1);
	expect("vine_task_add_input(an absolute name)", vine_task_add_input(t, in, "/abs", 0), 0);
	expect("vine_task_add_output(NULL file)", vine_task_add_output(t, NULL, "x", 0), 0);
	int id = vine_submit(m, t);
	if (id <= 0) {
		fprintf(stderr, "returns: vine_submit: %s\n", vine_last_error());
		return 1;
	}
	expect("vine_cancel_by_task_id(a submitted task)", vine_cancel_by_task_id(m, id), 1);
	expect("vine_cancel_by_task_id(no such task)", vine_cancel_by_task_id(m, id + 1000), 0);
	struct vine_task *back = vine_wait(m, 60);
	if (!back || vine_task_get_result(back) != VINE_RESULT_CANCELLED) {
		fprintf(stderr, "returns: the cancelled task did not come back cancelled\n");
		failures++;
	}
	if (back)
		vine_task_delete(back);
	vine_delete(m);
	if (failures)
		return 1;
	printf("returns: TaskVine's return values, 20 checks\n");
	return 0;
}
