/*
 * taskvine.h: the name TaskVine's C programs include. A program written for
 * cctools TaskVine builds against vine by this header alone: it includes vine.h,
 * where every name TaskVine's taskvine.h also has keeps TaskVine's value and
 * meaning. vine.h documents each function, and where vine differs from TaskVine
 * its comment says so. Differences that compile unchanged:
 *
 *  - Eight calls return what TaskVine's return, not vine.h's 0 or negative
 *    error: this header maps them onto vine's through small wrappers, so a
 *    program that tests them as TaskVine documents sees TaskVine's values,
 *    and vine_last_error() still says why one failed. vine_task_add_input,
 *    vine_task_add_output, vine_set_password_file, vine_enable_monitoring,
 *    vine_enable_proportional_resources and vine_disable_proportional_resources
 *    return 1 on success and 0 on failure; vine_cancel_by_task_id returns 1
 *    if the task was found and cancelled, else 0; vine_tune returns 0, or -1
 *    on failure. A program that includes vine.h gets vine.h's values.
 *  - The names TaskVine's taskvine.h brings in from cctools' own headers and
 *    its programs use are declared here: timestamp_t and timestamp_get
 *    (microseconds since the epoch), category_mode_t with the
 *    CATEGORY_ALLOCATION_MODE_* values, category_allocation_t with the
 *    CATEGORY_ALLOCATION_* values, and time_t (<time.h>).
 *  - Calls that return nothing in TaskVine (vine_task_set_cores, vine_set_name,
 *    vine_get_stats, vine_task_delete, ...) return an int in vine: 0, or a
 *    negative VINE_ERROR_* with the reason in vine_last_error().
 *  - Some parameters are wider: cores are a double (fractions of a core), times
 *    in seconds are doubles, vine_declare_buffer takes const void *, getters take
 *    const pointers.
 *  - Peer transfers (vine_enable_peer_transfers, on by default) move cached
 *    inputs and temps between remote workers as in TaskVine; peer links are
 *    authenticated, and under TLS when the manager's links are; vine_stats has
 *    vine's own bytes_peer.
 *  - Proportional resources are off unless vine_enable_proportional_resources
 *    turns them on (TaskVine's are on): a task that sets no resources gets
 *    one core and no memory or disk bound, not a whole worker. With them on, a
 *    task's share is of the largest worker's size.
 *  - vine_enable_monitoring measures tasks (vine_task_get_resources); its
 *    time series is not written. TaskVine's struct rmsummary is vine's struct
 *    vine_resources, with the same fields; this header maps the names, and
 *    rmsummary_create, rmsummary_delete, rmsummary_set and rmsummary_get onto
 *    vine's, so programs that build summaries need no cctools library.
 *  - vine_create(-1) is vine_create(VINE_PORT_NONE): no port, local threads
 *    only (TaskVine's -1 is any port). vine_create(0) takes any free port the
 *    system gives; VINE_PORT, VINE_LOW_PORT and VINE_HIGH_PORT are not read.
 *    Give the port itself, or 0 and read it back with vine_port.
 *  - Values TaskVine accepts and vine refuses, with the reason in
 *    vine_last_error(): a resource of -1 given to vine_task_set_cores and the
 *    other single setters (TaskVine's "unset"; a new task has none set), 0
 *    cores, and a vine_wait timeout below -1 (TaskVine waits 5 s).
 *  - A second vine_cancel_by_task_id of a task not yet returned by a wait
 *    returns 1 (it comes back cancelled), where TaskVine's returns 0.
 *  - Each vine_declare_* call gives a file object of its own, even for a name
 *    declared before (TaskVine gives back the earlier one); each is deleted on
 *    its own.
 *  - vine_result_string of a value that is no result gives "UNKNOWN_RESULT"
 *    (TaskVine's gives NULL).
 *  - The manager listens on 127.0.0.1 unless told otherwise (TaskVine's on
 *    every address): set VINE_LISTEN_ADDRESS (e.g. 0.0.0.0, see vine_create)
 *    for workers on other hosts to reach it.
 *  - vine_enable_transactions_log, vine_enable_perf_log and
 *    vine_enable_taskgraph_log write where their path says, relative to the
 *    current directory (TaskVine's write under the run's vine-logs directory,
 *    vine_get_path_log; vine's debug log and runtime directory are as
 *    TaskVine's).
 *  - A command killed by a signal comes back VINE_RESULT_SIGNAL, with the
 *    signal as its exit code (TaskVine's reports VINE_RESULT_SUCCESS with that
 *    exit code and never uses VINE_RESULT_SIGNAL).
 *  - An input URL that cannot be downloaded ends the task at once with
 *    VINE_RESULT_INPUT_MISSING (TaskVine's worker gives the task back, which
 *    then is forsaken and tried again until vine_task_set_max_forsaken).
 *  - An output inside an input mounted as a symbolic link
 *    (VINE_MOUNT_SYMLINK) is refused: VINE_RESULT_OUTPUT_MISSING.
 *  - vine_wait returns NULL at once when no task is outstanding (TaskVine's
 *    may wait out the timeout).
 *  - vine_hungry compares the tasks waiting with the workers' task slots
 *    (see vine.h), not TaskVine's count of resources left over.
 *  - vine_set_name does not set the VINE_NAME environment variable.
 *
 * What vine lacks of TaskVine's C API (115 of its 142 functions are in vine.h):
 *
 * Not yet in vine (planned):
 *  - vine_get_status (it returns TaskVine's struct jx; vine_status and its
 *    JSON answer the same questions).
 *
 * Deliberately absent:
 *  - The catalog server: vine_set_catalog_servers, vine_update_catalog,
 *    vine_set_property, vine_set_priority, vine_set_manager_preferred_connection.
 *    vine's workers are given the manager's HOST:PORT; there is no catalog.
 *  - TaskVine's Python function libraries and serverless calls:
 *    vine_manager_install_library, vine_manager_remove_library,
 *    vine_manager_find_library_template, vine_task_set_library_provided,
 *    vine_task_set_library_required, vine_task_get_library_provided,
 *    vine_task_get_library_required, vine_task_set_function_slots,
 *    vine_task_set_function_exec_mode_from_string,
 *    vine_task_add_execution_context, vine_task_set_snapshot_file. vine's
 *    function tasks are native: vine_register_function, vine_task_create_function
 *    and vine_worker --library.
 *  - Files in other systems' protocols: vine_declare_chirp (Chirp),
 *    vine_declare_xrootd (XRootD); and starch, cctools' packer of executables:
 *    vine_declare_starch, vine_task_add_starch_package. Python environments
 *    (poncho) are unpacked and activated but never run through Python;
 *    vine_task_add_environment is not there (vine_task_add_poncho_package is).
 *  - Worker selection policies: vine_set_scheduler, vine_task_set_scheduler
 *    (vine places a task on a worker that holds its temps, else the first that
 *    fits, in priority order), and vine_manager_release_random_worker.
 *  - vine_counters_print (TaskVine's internal allocation counters).
 */
#ifndef VINE_TASKVINE_H
#define VINE_TASKVINE_H

#include "vine.h"

#include <stdint.h>
#include <sys/time.h>
#include <sys/types.h>
#include <time.h>

/* What TaskVine's taskvine.h has from cctools' timestamp.h and category.h
   (skipped where those headers are included too). */
#ifndef TIMESTAMP_H
typedef uint64_t timestamp_t;

static inline timestamp_t timestamp_get(void)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	return (timestamp_t)tv.tv_sec * 1000000u + (timestamp_t)tv.tv_usec;
}
#endif

#ifndef CATEGORY_H
/* As in cctools' category.h: the modes are a category_mode_t, and a
   category_allocation_t says which step of its sizing a task is at. */
typedef int category_mode_t;
typedef enum {
	CATEGORY_ALLOCATION_FIRST = 0,
	CATEGORY_ALLOCATION_AUTO = 0,
	CATEGORY_ALLOCATION_MAX,
	CATEGORY_ALLOCATION_ERROR,
	CATEGORY_ALLOCATION_GREEDY_BUCKETING,
	CATEGORY_ALLOCATION_EXHAUSTIVE_BUCKETING,
	CATEGORY_ALLOCATION_DET_GREEDY_BUCKETING,
	CATEGORY_ALLOCATION_DET_EXHAUSTIVE_BUCKETING,
	CATEGORY_ALLOCATION_QUANTIZED_BUCKETING
} category_allocation_t;
#define CATEGORY_ALLOCATION_MODE_FIXED VINE_ALLOCATION_MODE_FIXED
#define CATEGORY_ALLOCATION_MODE_MAX VINE_ALLOCATION_MODE_MAX
#define CATEGORY_ALLOCATION_MODE_MIN_WASTE VINE_ALLOCATION_MODE_MIN_WASTE
#define CATEGORY_ALLOCATION_MODE_MAX_THROUGHPUT VINE_ALLOCATION_MODE_MAX_THROUGHPUT
#define CATEGORY_ALLOCATION_MODE_GREEDY_BUCKETING VINE_ALLOCATION_MODE_GREEDY_BUCKETING
#define CATEGORY_ALLOCATION_MODE_EXHAUSTIVE_BUCKETING VINE_ALLOCATION_MODE_EXHAUSTIVE_BUCKETING
#define CATEGORY_ALLOCATION_MODE_DET_GREEDY_BUCKETING VINE_ALLOCATION_MODE_DET_GREEDY_BUCKETING
#define CATEGORY_ALLOCATION_MODE_DET_EXHAUSTIVE_BUCKETING VINE_ALLOCATION_MODE_DET_EXHAUSTIVE_BUCKETING
#define CATEGORY_ALLOCATION_MODE_QUANTIZED_BUCKETING VINE_ALLOCATION_MODE_QUANTIZED_BUCKETING
#endif

/* TaskVine's resource summaries are vine's, with the resource monitor's
   values: a new summary's signal, exit_status and last_error are 0, and
   rmsummary_set gives 1, or -1 for a name that is not a number of it. */
#define rmsummary vine_resources

static inline struct vine_resources *vine_taskvine_rmsummary_create(double default_value)
{
	struct vine_resources *s = vine_resources_create(default_value);
	if (s) {
		s->signal = 0;
		s->exit_status = 0;
		s->last_error = 0;
	}
	return s;
}

static inline int vine_taskvine_rmsummary_set(struct vine_resources *s, const char *resource, double value)
{
	return vine_resources_set(s, resource, value) == 1 ? 1 : -1;
}

#define rmsummary_create vine_taskvine_rmsummary_create
#define rmsummary_delete vine_resources_delete
#define rmsummary_set vine_taskvine_rmsummary_set
#define rmsummary_get vine_resources_get

/* TaskVine's return values, where they differ from vine.h's. */
static inline int vine_taskvine_task_add_input(struct vine_task *t, struct vine_file *f,
		const char *remote_name, vine_mount_flags_t flags)
{
	return vine_task_add_input(t, f, remote_name, flags) == 0;
}

static inline int vine_taskvine_task_add_output(struct vine_task *t, struct vine_file *f,
		const char *remote_name, vine_mount_flags_t flags)
{
	return vine_task_add_output(t, f, remote_name, flags) == 0;
}

static inline int vine_taskvine_set_password_file(struct vine_manager *m, const char *file)
{
	return vine_set_password_file(m, file) == 0;
}

static inline int vine_taskvine_enable_monitoring(struct vine_manager *m, int watchdog, int time_series)
{
	return vine_enable_monitoring(m, watchdog, time_series) == 1;
}

static inline int vine_taskvine_cancel_by_task_id(struct vine_manager *m, int id)
{
	return vine_cancel_by_task_id(m, id) == 0;
}

static inline int vine_taskvine_enable_proportional_resources(struct vine_manager *m)
{
	return vine_enable_proportional_resources(m) == 0;
}

static inline int vine_taskvine_disable_proportional_resources(struct vine_manager *m)
{
	return vine_disable_proportional_resources(m) == 0;
}

static inline int vine_taskvine_tune(struct vine_manager *m, const char *name, double value)
{
	return vine_tune(m, name, value) == 0 ? 0 : -1;
}

#define vine_task_add_input vine_taskvine_task_add_input
#define vine_task_add_output vine_taskvine_task_add_output
#define vine_set_password_file vine_taskvine_set_password_file
#define vine_enable_monitoring vine_taskvine_enable_monitoring
#define vine_cancel_by_task_id vine_taskvine_cancel_by_task_id
#define vine_tune vine_taskvine_tune
#define vine_enable_proportional_resources vine_taskvine_enable_proportional_resources
#define vine_disable_proportional_resources vine_taskvine_disable_proportional_resources

#endif /* VINE_TASKVINE_H */
