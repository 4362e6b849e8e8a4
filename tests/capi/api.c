/*
 * The C API as a C program sees it: every entry point with NULL and bad
 * arguments, ownership rules, a deleted manager, many threads at once, commands
 * with files, limits, cancellation and shutdown. Prints "N passed, M failed".
 *
 * Synchronisation is by pthread conditions (gate tasks), never by sleeping; waits
 * are bounded (60 s) so a bug fails the run instead of hanging it.
 */
#define _GNU_SOURCE
#include "vine.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static int passed, failed;

#define CHECK(cond)                                                                   \
    do {                                                                              \
        if (cond) {                                                                   \
            passed++;                                                                 \
        } else {                                                                      \
            failed++;                                                                 \
            fprintf(stderr, "FAIL %s:%d: %s (last error: %s)\n", __FILE__, __LINE__, \
                    #cond, vine_last_error());                                        \
        }                                                                             \
    } while (0)

/* A failing call returns its code and leaves a message. */
#define CHECK_ERR(expr, code)                                    \
    do {                                                         \
        int rc_ = (expr);                                        \
        CHECK(rc_ == (code));                                    \
        CHECK(vine_last_error() && vine_last_error()[0] != 0);   \
    } while (0)

#define LONG 60

static struct vine_manager *manager(double cores)
{
    struct vine_manager *m = vine_create(VINE_PORT_NONE);
    CHECK(m != NULL);
    if (!m) exit(1);
    CHECK(vine_tune(m, "local-cores", cores) == 0);
    return m;
}

/* ---- functions ---------------------------------------------------------- */

static int echo(const void *in, size_t len, struct vine_buffer *out, void *ctx)
{
    (void)ctx;
    return vine_buffer_append(out, in, len);
}

static int echo_other(const void *in, size_t len, struct vine_buffer *out, void *ctx)
{
    return echo(in, len, out, ctx);
}

/* Output: a checksum of the input, so every task's answer is its own. */
static int checksum(const void *in, size_t len, struct vine_buffer *out, void *ctx)
{
    (void)ctx;
    uint64_t h = 1469598103934665603ull;
    const unsigned char *p = in;
    for (size_t i = 0; i < len; i++) h = (h ^ p[i]) * 1099511628211ull;
    return vine_buffer_append(out, &h, sizeof h);
}

static int fails_with_7(const void *in, size_t len, struct vine_buffer *out, void *ctx)
{
    (void)in; (void)len; (void)ctx;
    vine_buffer_append(out, "partial", 7);
    return 7;
}

static int add_context(const void *in, size_t len, struct vine_buffer *out, void *ctx)
{
    int x;
    if (len != sizeof x) return 1;
    memcpy(&x, in, sizeof x);
    x += *(int *)ctx;
    return vine_buffer_append(out, &x, sizeof x);
}

/* A gate: tasks block in it until the test opens it. */
struct gate {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    int open;
    int inside;
};

static struct gate gate = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};

static int gated(const void *in, size_t len, struct vine_buffer *out, void *ctx)
{
    (void)ctx;
    pthread_mutex_lock(&gate.lock);
    gate.inside++;
    pthread_cond_broadcast(&gate.changed);
    while (!gate.open) pthread_cond_wait(&gate.changed, &gate.lock);
    gate.inside--;
    pthread_mutex_unlock(&gate.lock);
    return vine_buffer_append(out, in, len);
}

static void gate_reset(void)
{
    pthread_mutex_lock(&gate.lock);
    gate.open = 0;
    pthread_mutex_unlock(&gate.lock);
}

static void gate_wait_inside(int n)
{
    pthread_mutex_lock(&gate.lock);
    while (gate.inside < n) pthread_cond_wait(&gate.changed, &gate.lock);
    pthread_mutex_unlock(&gate.lock);
}

static void gate_open(void)
{
    pthread_mutex_lock(&gate.lock);
    gate.open = 1;
    pthread_cond_broadcast(&gate.changed);
    pthread_mutex_unlock(&gate.lock);
}

/* ---- NULL and bad arguments ------------------------------------------------ */

static void test_null_and_bad_arguments(void)
{
    struct vine_manager *m = manager(2);
    struct vine_task *t = vine_task_create("true");
    struct vine_stats s;
    size_t len = 99;

    /* TaskVine's manager calls, as TaskVine programs call them. */
    char *version = vine_version_string();
    CHECK(version && strcmp(version, vine_version()) == 0);
    CHECK(vine_get_name(m) == NULL); /* none set, as in TaskVine */
    CHECK(vine_set_task_id_min(m, 50) == 50);
    CHECK(vine_set_tasks_left_count(m, 1000) == 0);
    CHECK(vine_set_tasks_left_count(m, 0) == 0);
    CHECK_ERR(vine_set_tasks_left_count(m, -1), VINE_ERROR_INVALID_ARGUMENT);
    CHECK_ERR(vine_set_tasks_left_count(NULL, 1), VINE_ERROR_NULL);
    {
        /* The local pool is the one worker: 2 cores. */
        struct vine_resources **sizes = vine_summarize_workers(m);
        CHECK(sizes && sizes[0] && !sizes[1]);
        if (sizes && sizes[0]) {
            CHECK(sizes[0]->cores == 2.0 && sizes[0]->workers == 1.0);
            CHECK(vine_resources_get(sizes[0], "workers") == 1.0);
            CHECK(sizes[0]->wall_time == -1.0);
        }
        for (int i = 0; sizes && sizes[i]; i++) vine_resources_delete(sizes[i]);
        free(sizes);
        CHECK(vine_summarize_workers(NULL) == NULL);
    }
    /* Nothing has gone to a worker: no bandwidth yet. */
    CHECK(vine_get_effective_bandwidth(m) == 0.0);
    CHECK(vine_get_effective_bandwidth(NULL) == -1.0);
    CHECK(vine_set_bandwidth_limit(m, "10MB") == 0);
    CHECK(vine_set_bandwidth_limit(m, "1.5 G") == 0);
    CHECK(vine_set_bandwidth_limit(m, "0") == 0);
    CHECK_ERR(vine_set_bandwidth_limit(m, "-1M"), VINE_ERROR_INVALID_ARGUMENT);
    CHECK_ERR(vine_set_bandwidth_limit(m, "nan"), VINE_ERROR_INVALID_ARGUMENT);
    CHECK_ERR(vine_set_bandwidth_limit(m, "1e400"), VINE_ERROR_INVALID_ARGUMENT);
    CHECK_ERR(vine_set_bandwidth_limit(m, "fast"), VINE_ERROR_INVALID_ARGUMENT);
    CHECK_ERR(vine_set_bandwidth_limit(m, ""), VINE_ERROR_INVALID_ARGUMENT);
    CHECK_ERR(vine_set_bandwidth_limit(m, NULL), VINE_ERROR_NULL);
    CHECK_ERR(vine_set_bandwidth_limit(NULL, "1M"), VINE_ERROR_NULL);
    CHECK(vine_set_category_mode(m, NULL, VINE_ALLOCATION_MODE_GREEDY_BUCKETING) == 1);
    CHECK(vine_set_category_mode(m, "x", (vine_category_mode_t)42) == 0);
    CHECK_ERR(vine_set_category_mode(m, "", VINE_ALLOCATION_MODE_MAX), VINE_ERROR_INVALID_ARGUMENT);
    CHECK(vine_enable_category_resource(m, NULL, "gpus", 0) == 1);
    CHECK(vine_enable_category_resource(m, "x", "memory", 0) == 1);
    CHECK(vine_enable_category_resource(m, "x", "cpus", 1) == 0);
    CHECK(vine_last_error_code() == VINE_ERROR_INVALID_ARGUMENT);
    CHECK(vine_enable_category_resource(m, "x", "disk", 2) == 0);
    CHECK(vine_enable_category_resource(m, "x", "disk", -1) == 0);
    CHECK_ERR(vine_enable_category_resource(m, "x", NULL, 1), VINE_ERROR_NULL);
    CHECK_ERR(vine_enable_category_resource(m, "", "cores", 1), VINE_ERROR_INVALID_ARGUMENT);
    CHECK_ERR(vine_enable_category_resource(NULL, "x", "cores", 1), VINE_ERROR_NULL);
    vine_block_host(m, "node3");
    vine_block_host_with_timeout(m, "node4", 10);
    vine_unblock_host(m, "node3");
    vine_unblock_all(m);
    CHECK(vine_set_draining_by_hostname(m, "node3", 1) == 0);
    CHECK(vine_workers_shutdown(m, 0) == 0);
    CHECK(vine_enable_disconnect_slow_workers(m, 0) == 1);
    CHECK_ERR(vine_enable_disconnect_slow_workers(m, INFINITY), VINE_ERROR_INVALID_ARGUMENT);
    CHECK_ERR(vine_enable_disconnect_slow_workers(m, 2e6), VINE_ERROR_INVALID_ARGUMENT);
    vine_set_keepalive_interval(m, 60);
    vine_set_keepalive_timeout(m, 120);
    CHECK(vine_enable_monitoring(m, 1, 0) == 1);
    CHECK(vine_disable_peer_transfers(m) == 1 && vine_enable_peer_transfers(m) == 1);
    {
        struct vine_file *b = vine_declare_buffer(m, "x", 1, VINE_CACHE_LEVEL_WORKFLOW, 0);
        CHECK(b != NULL);
        CHECK(vine_file_replica_count(m, b) == 0); /* the local pool is not counted */
        CHECK_ERR(vine_file_replica_count(NULL, b), VINE_ERROR_NULL);
        CHECK_ERR(vine_file_replica_count(m, NULL), VINE_ERROR_NULL);
    }
    CHECK_ERR(vine_block_host(m, NULL), VINE_ERROR_NULL);
    CHECK_ERR(vine_block_host(NULL, "x"), VINE_ERROR_NULL);
    CHECK_ERR(vine_workers_shutdown(NULL, 0), VINE_ERROR_NULL);

    CHECK(vine_create(70000) == NULL);
    CHECK(vine_create(-7) == NULL);
    /* -1 would read as VINE_PORT_NONE: a NULL manager is an invalid handle here. */
    CHECK_ERR(vine_port(NULL), VINE_ERROR_INVALID_HANDLE);
    CHECK(vine_last_error_code() == VINE_ERROR_INVALID_HANDLE);
    CHECK(vine_port(m) == VINE_PORT_NONE);
    CHECK_ERR(vine_tune(NULL, "max-retries", 1), VINE_ERROR_NULL);
    CHECK_ERR(vine_tune(m, NULL, 1), VINE_ERROR_NULL);
    CHECK_ERR(vine_tune(m, "no-such-setting", 1), VINE_ERROR_UNKNOWN_SETTING);
    CHECK_ERR(vine_tune(m, "max-retries", -1), VINE_ERROR_INVALID_ARGUMENT);
    CHECK_ERR(vine_tune(m, "max-retries", NAN), VINE_ERROR_INVALID_ARGUMENT);
    CHECK_ERR(vine_tune(m, "local-worker-processes", 1), VINE_ERROR_INVALID_ARGUMENT);
    CHECK(vine_set_name(m, "x") == 0 && strcmp(vine_get_name(m), "x") == 0);
    CHECK(vine_set_name(m, NULL) == 0 && vine_get_name(m) == NULL);
    CHECK_ERR(vine_set_name(NULL, "x"), VINE_ERROR_NULL);
    CHECK(vine_set_name(m, "harness") == 0);
    CHECK_ERR(vine_set_password_file(m, "/nonexistent/password"), VINE_ERROR_IO);
    CHECK_ERR(vine_set_password_file(m, NULL), VINE_ERROR_NULL);
    CHECK_ERR(vine_set_runtime_info_path_for(m, NULL), VINE_ERROR_NULL);
    CHECK_ERR(vine_set_runtime_info_path_for(m, ""), VINE_ERROR_INVALID_ARGUMENT);
    CHECK_ERR(vine_set_runtime_info_path(NULL), VINE_ERROR_NULL);
    CHECK_ERR(vine_submit(NULL, t), 0);
    CHECK_ERR(vine_submit(m, NULL), 0);
    CHECK(vine_wait(NULL, 0) == NULL);
    CHECK(vine_last_error_code() == VINE_ERROR_NULL);
    CHECK(vine_wait(m, -5) == NULL);
    CHECK(vine_last_error()[0] != 0);
    CHECK(vine_last_error_code() == VINE_ERROR_INVALID_ARGUMENT);
    /* A call that fails by returning NULL says which error it was. */
    CHECK(vine_task_create_function(NULL, NULL, 0) == NULL);
    CHECK(vine_last_error_code() == VINE_ERROR_NULL);
    CHECK(vine_declare_file(m, "/tmp/x", 99, 0) == NULL);
    CHECK(vine_last_error_code() == VINE_ERROR_INVALID_ARGUMENT);
    CHECK(vine_set_name(m, "harness") == 0);
    CHECK(vine_last_error_code() == VINE_ERROR_INVALID_ARGUMENT);
    CHECK(vine_wait_for_task_id(m, 0, 0) == NULL);
    CHECK(vine_wait_for_tag(NULL, "x", 0) == NULL);
    CHECK_ERR(vine_empty(NULL), VINE_ERROR_NULL);
    CHECK_ERR(vine_hungry(NULL), VINE_ERROR_NULL);
    CHECK_ERR(vine_cancel_by_task_id(NULL, 1), VINE_ERROR_NULL);
    CHECK_ERR(vine_cancel_by_task_id(m, 12345), VINE_ERROR_UNKNOWN_TASK);
    CHECK_ERR(vine_cancel_by_task_id(m, -1), VINE_ERROR_INVALID_ARGUMENT);
    CHECK_ERR(vine_cancel_all(NULL), VINE_ERROR_NULL);
    CHECK_ERR(vine_get_stats(NULL, &s), VINE_ERROR_NULL);
    CHECK_ERR(vine_get_stats(m, NULL), VINE_ERROR_NULL);
    CHECK_ERR(vine_shutdown(NULL), VINE_ERROR_NULL);
    vine_delete(NULL);

    {
        /* As in TaskVine: a task created without a command gets one later. */
        struct vine_task *later = vine_task_create(NULL);
        CHECK(later != NULL && vine_task_get_command(later) == NULL);
        CHECK(vine_submit(m, later) == 0);
        CHECK(vine_task_set_command(later, "true") == 0);
        CHECK(strcmp(vine_task_get_command(later), "true") == 0);
        CHECK_ERR(vine_task_set_command(later, NULL), VINE_ERROR_NULL);
        vine_task_delete(later);
    }
    CHECK(vine_task_create_function(NULL, "x", 1) == NULL);
    CHECK(vine_task_create_function("", "x", 1) == NULL);
    CHECK(vine_task_create_function("f", NULL, 4) == NULL);
    CHECK(vine_task_create_local(NULL, NULL, NULL, 0) == NULL);
    CHECK_ERR(vine_task_delete(NULL), VINE_ERROR_NULL);
    CHECK_ERR(vine_task_set_cores(NULL, 1), VINE_ERROR_NULL);
    CHECK_ERR(vine_task_set_cores(t, 0), VINE_ERROR_INVALID_ARGUMENT);
    CHECK_ERR(vine_task_set_cores(t, -1), VINE_ERROR_INVALID_ARGUMENT);
    CHECK_ERR(vine_task_set_cores(t, NAN), VINE_ERROR_INVALID_ARGUMENT);
    CHECK_ERR(vine_task_set_cores(t, 0.0001), VINE_ERROR_INVALID_ARGUMENT);
    /* A huge number is named in exponent form, not in 300 digits. */
    CHECK_ERR(vine_task_set_cores(t, 1e300), VINE_ERROR_INVALID_ARGUMENT);
    CHECK(strstr(vine_last_error(), "not 1e300") && strlen(vine_last_error()) < 100);
    CHECK_ERR(vine_task_set_time_max(t, -1e300), VINE_ERROR_INVALID_ARGUMENT);
    CHECK(strstr(vine_last_error(), "not -1e300") && strlen(vine_last_error()) < 100);
    CHECK_ERR(vine_task_set_memory(t, -1), VINE_ERROR_INVALID_ARGUMENT);
    CHECK_ERR(vine_task_set_disk(t, -1), VINE_ERROR_INVALID_ARGUMENT);
    CHECK_ERR(vine_task_set_gpus(t, -1), VINE_ERROR_INVALID_ARGUMENT);
    CHECK_ERR(vine_task_set_priority(t, INFINITY), VINE_ERROR_INVALID_ARGUMENT);
    CHECK_ERR(vine_task_set_category(t, NULL), VINE_ERROR_NULL);
    CHECK_ERR(vine_task_set_category(t, ""), VINE_ERROR_INVALID_ARGUMENT);
    CHECK_ERR(vine_task_set_category(t, "\xff\xfe"), VINE_ERROR_INVALID_ARGUMENT);
    CHECK(strstr(vine_last_error(), "UTF-8") != NULL);
    CHECK_ERR(vine_task_set_tag(t, NULL), VINE_ERROR_NULL);
    CHECK_ERR(vine_task_set_time_min(t, -1), VINE_ERROR_INVALID_ARGUMENT);
    CHECK_ERR(vine_task_set_time_max(t, NAN), VINE_ERROR_INVALID_ARGUMENT);
    CHECK_ERR(vine_task_set_retries(t, -1), VINE_ERROR_INVALID_ARGUMENT);
    /* An int64_t count, as in TaskVine: 2^32 + 1 is refused, not cut to 1. */
    CHECK_ERR(vine_task_set_retries(t, ((int64_t)1 << 32) + 1), VINE_ERROR_INVALID_ARGUMENT);
    CHECK_ERR(vine_task_set_retries(t, INT64_MAX), VINE_ERROR_INVALID_ARGUMENT);
    CHECK(vine_task_set_retries(t, 4000000000) == 0);
    CHECK_ERR(vine_task_set_env_var(t, NULL, "x"), VINE_ERROR_NULL);
    CHECK_ERR(vine_task_set_env_var(t, "A=B", "x"), VINE_ERROR_INVALID_ARGUMENT);
    CHECK_ERR(vine_task_set_exec_mode(t, 9), VINE_ERROR_INVALID_ARGUMENT);
    CHECK_ERR(vine_task_set_exec_mode(t, VINE_EXEC_PROCESS), VINE_ERROR_INVALID_ARGUMENT);
    CHECK(vine_task_get_result(NULL) == VINE_RESULT_UNKNOWN);
    CHECK(vine_task_get_exit_code(NULL) == -1);
    CHECK(vine_task_get_exit_code(t) == -1); /* not run */
    CHECK(vine_task_get_stdout(NULL) == NULL);
    CHECK(vine_task_get_output(NULL, &len) == NULL && len == 0);
    CHECK(vine_task_get_output(t, NULL) == NULL);
    CHECK(vine_task_get_id(NULL) == 0);
    CHECK(vine_task_get_id(t) == 0);
    CHECK(vine_task_get_tag(NULL) == NULL);
    CHECK(vine_task_get_tag(t) == NULL);
    CHECK(vine_task_get_category(NULL) == NULL);
    CHECK(strcmp(vine_task_get_category(t), "default") == 0);
    CHECK(vine_task_get_reason(t) == NULL);
    CHECK(strcmp(vine_task_get_command(t), "true") == 0);
    CHECK(vine_task_get_metric(t, "no_such_metric") == 0); /* as in TaskVine */
    CHECK(strstr(vine_last_error(), "no_such_metric") != NULL);
    CHECK(vine_task_get_metric(t, NULL) == VINE_ERROR_NULL);
    CHECK(vine_task_get_metric(NULL, "retries") == VINE_ERROR_NULL);

    CHECK(vine_declare_file(NULL, "x", VINE_CACHE_LEVEL_TASK, 0) == NULL);
    CHECK(vine_declare_file(m, NULL, VINE_CACHE_LEVEL_TASK, 0) == NULL);
    CHECK(vine_declare_file(m, "x", 7, 0) == NULL);
    CHECK(vine_declare_file(m, "x", VINE_CACHE_LEVEL_TASK, 1 << 12) == NULL);
    CHECK(vine_declare_buffer(m, NULL, 3, VINE_CACHE_LEVEL_TASK, 0) == NULL);
    CHECK(vine_declare_temp(NULL) == NULL);
    struct vine_file *f = vine_declare_buffer(m, "abc", 3, VINE_CACHE_LEVEL_TASK, 0);
    CHECK(f != NULL);
    CHECK(vine_file_size(f) == 3);
    CHECK(vine_file_size(NULL) == 0);
    CHECK_ERR(vine_task_add_input(t, f, "../escape", 0), VINE_ERROR_INVALID_ARGUMENT);
    CHECK_ERR(vine_task_add_input(t, f, "/abs/path", 0), VINE_ERROR_INVALID_ARGUMENT);
    CHECK_ERR(vine_task_add_input(t, f, "a/../../b", 0), VINE_ERROR_INVALID_ARGUMENT);
    CHECK_ERR(vine_task_add_input(t, f, "", 0), VINE_ERROR_INVALID_ARGUMENT);
    CHECK_ERR(vine_task_add_input(t, f, NULL, 0), VINE_ERROR_NULL);
    CHECK_ERR(vine_task_add_input(t, NULL, "x", 0), VINE_ERROR_NULL);
    CHECK_ERR(vine_task_add_input(t, (struct vine_file *)&len, "x", 0), VINE_ERROR_INVALID_HANDLE);
    CHECK_ERR(vine_task_add_input(t, f, "x", 1 << 10), VINE_ERROR_INVALID_ARGUMENT);
    CHECK_ERR(vine_task_add_output(t, f, "../out", 0), VINE_ERROR_INVALID_ARGUMENT);
    CHECK(vine_task_add_input(t, f, "in/x", 0) == 0);
    CHECK_ERR(vine_task_add_output(t, f, "in/x", 0), VINE_ERROR_INVALID_ARGUMENT);
    /* One name in the sandbox, however spelled. */
    CHECK_ERR(vine_task_add_input(t, f, "./in/x", 0), VINE_ERROR_INVALID_ARGUMENT);
    CHECK_ERR(vine_task_add_input(t, f, "in//x/", 0), VINE_ERROR_INVALID_ARGUMENT);
    CHECK_ERR(vine_task_add_output(t, f, "in/./x", 0), VINE_ERROR_INVALID_ARGUMENT);
    CHECK(vine_task_add_input(t, f, "in/xy", 0) == 0);
    /* Nested inputs: never inside a file, never around one added before. */
    CHECK_ERR(vine_task_add_input(t, f, "in/x/deeper", 0), VINE_ERROR_INVALID_ARGUMENT);
    CHECK(strstr(vine_last_error(), "not a directory") != NULL);
    CHECK_ERR(vine_task_add_input(t, f, "./in", 0), VINE_ERROR_INVALID_ARGUMENT);
    CHECK(strstr(vine_last_error(), "first") != NULL);
    {
        /* Nothing inside an input that is linked, not copied. */
        struct vine_task *n = vine_task_create("true");
        struct vine_file *here = vine_declare_file(m, ".", VINE_CACHE_LEVEL_TASK, 0);
        CHECK(vine_task_add_input(n, here, "s", VINE_MOUNT_SYMLINK) == 0);
        CHECK_ERR(vine_task_add_input(n, f, "s/inner", 0), VINE_ERROR_INVALID_ARGUMENT);
        CHECK(strstr(vine_last_error(), "linked") != NULL);
        /* Outputs are taken whole: never one inside another, in either order. */
        struct vine_file *outer = vine_declare_temp(m), *inner = vine_declare_temp(m);
        CHECK(vine_task_add_output(n, outer, "od", 0) == 0);
        CHECK_ERR(vine_task_add_output(n, inner, "od/a", 0), VINE_ERROR_INVALID_ARGUMENT);
        CHECK(strstr(vine_last_error(), "inside") != NULL);
        CHECK(vine_task_add_output(n, inner, "oda", 0) == 0);
        /* Each direction's flags only. */
        CHECK_ERR(vine_task_add_input(n, f, "w", VINE_WATCH), VINE_ERROR_INVALID_ARGUMENT);
        CHECK_ERR(vine_task_add_input(n, f, "w", VINE_FAILURE_ONLY), VINE_ERROR_INVALID_ARGUMENT);
        CHECK_ERR(vine_task_add_input(n, f, "w", VINE_SUCCESS_ONLY), VINE_ERROR_INVALID_ARGUMENT);
        CHECK(strstr(vine_last_error(), "for outputs") != NULL);
        CHECK_ERR(vine_task_add_output(n, outer, "o1", VINE_MOUNT_SYMLINK), VINE_ERROR_INVALID_ARGUMENT);
        CHECK_ERR(vine_task_add_output(n, outer, "o1", VINE_FIXED_LOCATION), VINE_ERROR_INVALID_ARGUMENT);
        CHECK_ERR(vine_task_add_output(n, outer, "o1", VINE_MOUNT_RESEND), VINE_ERROR_INVALID_ARGUMENT);
        CHECK(strstr(vine_last_error(), "for inputs") != NULL);
        CHECK_ERR(vine_task_add_output(n, outer, "o1", VINE_FAILURE_ONLY | VINE_SUCCESS_ONLY),
                  VINE_ERROR_INVALID_ARGUMENT);
        CHECK(vine_task_add_input(n, f, "w", VINE_FIXED_LOCATION | VINE_MOUNT_RESEND) == 0);
        CHECK(vine_task_add_output(n, vine_declare_temp(m), "o1", VINE_WATCH | VINE_FAILURE_ONLY | VINE_MOUNT_MKDIR) == 0);
        CHECK(vine_task_delete(n) == 0);
        n = vine_task_create("true");
        CHECK(vine_task_add_output(n, inner, "od/a", 0) == 0);
        CHECK_ERR(vine_task_add_output(n, outer, "./od/", 0), VINE_ERROR_INVALID_ARGUMENT);
        CHECK(vine_task_delete(n) == 0);
    }
    CHECK(vine_fetch_file(NULL, f) == NULL);
    CHECK(vine_fetch_file(m, NULL) == NULL);
    size_t got_len = 7;
    CHECK(vine_fetch_file_len(m, f, NULL) == NULL && vine_last_error_code() == VINE_ERROR_NULL);
    CHECK(vine_fetch_file_len(m, NULL, &got_len) == NULL && got_len == 0);

    CHECK_ERR(vine_register_function(NULL, echo), VINE_ERROR_NULL);
    CHECK_ERR(vine_register_function("x", NULL), VINE_ERROR_NULL);
    CHECK_ERR(vine_buffer_append(NULL, "x", 1), VINE_ERROR_NULL);
    CHECK(vine_task_gpu_ids(NULL, 0) == 0);
    CHECK_ERR(vine_task_gpu_ids(NULL, 4), VINE_ERROR_NULL);
    CHECK(strcmp(vine_result_string(VINE_RESULT_SUCCESS), "SUCCESS") == 0);
    CHECK(strcmp(vine_result_string(VINE_RESULT_UNSCHEDULABLE), "UNSCHEDULABLE") == 0);
    CHECK(strcmp(vine_result_string(12345), "UNKNOWN_RESULT") == 0);
    /* TaskVine's results that vine never gives still have their names. */
    CHECK(strcmp(vine_result_string(VINE_RESULT_RMONITOR_ERROR), "MONITOR_ERROR") == 0);
    CHECK(strcmp(vine_result_string(VINE_RESULT_OUTPUT_TRANSFER_ERROR), "OUTPUT_TRANSFER_ERROR") == 0);
    CHECK(strcmp(vine_result_string(VINE_RESULT_LIBRARY_EXIT), "LIBRARY_EXIT") == 0);
    CHECK(strcmp(vine_result_string(VINE_RESULT_SANDBOX_EXHAUSTION), "SANDBOX_EXHAUSTION") == 0);
    CHECK(strcmp(vine_result_string(VINE_RESULT_MISSING_LIBRARY), "MISSING_LIBRARY") == 0);
    /* TaskVine's names and values, for programs that name them. */
    CHECK(VINE_RANDOM_PORT == 0 && VINE_RESULT_RMONITOR_ERROR == 8 << 3);
    CHECK(VINE_RESULT_OUTPUT_TRANSFER_ERROR == 9 << 3 && VINE_RESULT_LIBRARY_EXIT == 12 << 3);
    CHECK(VINE_RESULT_SANDBOX_EXHAUSTION == 13 << 3 && VINE_RESULT_MISSING_LIBRARY == 14 << 3);
    {
        char v[64];
        snprintf(v, sizeof v, "%d.%d.%d", VINE_VERSION_MAJOR, VINE_VERSION_MINOR, VINE_VERSION_PATCH);
        CHECK(strcmp(vine_version(), v) == 0);
    }
    CHECK(vine_task_delete(t) == 0);
    vine_delete(m);
}

/* ---- ownership, deleted managers, shutdown ---------------------------------- */

static void test_ownership_and_lifecycle(void)
{
    struct vine_manager *m = manager(1);
    struct vine_task *t = vine_task_create_function("echo", "hi", 2);
    int id = vine_submit(m, t);
    CHECK(id >= 1);
    CHECK(vine_task_get_id(t) == id);
    CHECK_ERR(vine_submit(m, t), 0);
    CHECK(vine_task_delete(t) == VINE_ERROR_TASK_SUBMITTED);
    CHECK(vine_task_set_cores(t, 2) == VINE_ERROR_TASK_SUBMITTED);
    CHECK(vine_task_get_result(t) == VINE_RESULT_UNKNOWN);
    struct vine_task *back = vine_wait_for_task_id(m, id, LONG);
    CHECK(back == t);
    CHECK(vine_task_get_result(t) == VINE_RESULT_SUCCESS);
    /* A wait that gives NULL says why, never leaving an earlier call's error. */
    CHECK(vine_task_set_cores(t, -1) == VINE_ERROR_INVALID_ARGUMENT);
    CHECK(vine_wait_for_task_id(m, id, 0) == NULL); /* already taken */
    CHECK(vine_last_error_code() == VINE_ERROR_UNKNOWN_TASK);
    CHECK(vine_task_set_cores(t, -1) == VINE_ERROR_INVALID_ARGUMENT);
    CHECK(vine_wait_for_task_id(m, 99999, LONG) == NULL); /* never existed: at once */
    CHECK(vine_last_error_code() == VINE_ERROR_UNKNOWN_TASK);
    CHECK(vine_empty(m) == 1);
    CHECK(vine_task_set_cores(t, -1) == VINE_ERROR_INVALID_ARGUMENT);
    CHECK(vine_wait(m, LONG) == NULL); /* nothing outstanding: at once */
    CHECK(vine_last_error_code() == VINE_ERROR_UNKNOWN_TASK);
    CHECK(strstr(vine_last_error(), "no task is outstanding") != NULL);
    CHECK(vine_task_delete(t) == 0);
    struct vine_task *slow = vine_task_create("sleep 600");
    vine_task_set_tag(slow, "slow");
    int slow_id = vine_submit(m, slow);
    CHECK(slow_id > 0);
    CHECK(vine_tune(m, "no-such-setting", 1) == VINE_ERROR_UNKNOWN_SETTING);
    CHECK(vine_wait(m, 0) == NULL);
    CHECK(vine_last_error_code() == VINE_ERROR_TIMEOUT);
    CHECK(vine_tune(m, "no-such-setting", 1) == VINE_ERROR_UNKNOWN_SETTING);
    CHECK(vine_wait_for_tag(m, "slow", 0) == NULL);
    CHECK(vine_last_error_code() == VINE_ERROR_TIMEOUT);
    CHECK(strstr(vine_last_error(), "slow") != NULL);
    CHECK(vine_wait_for_task_id(m, slow_id, 0) == NULL);
    CHECK(vine_last_error_code() == VINE_ERROR_TIMEOUT);
    CHECK(vine_cancel_by_task_id(m, slow_id) == 0);
    CHECK(vine_wait(m, LONG) == slow && vine_task_get_result(slow) == VINE_RESULT_CANCELLED);
    CHECK(vine_task_delete(slow) == 0);

    /* A file belongs to the manager it was declared to: another one's tasks
       cannot use it, and that one cannot fetch, prune, count or undeclare it. */
    struct vine_manager *other = manager(1);
    struct vine_file *mine = vine_declare_buffer(m, "mine", 4, VINE_CACHE_LEVEL_TASK, 0);
    struct vine_task *c = vine_task_create("cat in");
    CHECK(vine_task_add_input(c, mine, "in", 0) == 0);
    CHECK_ERR(vine_submit(other, c), 0);
    CHECK(strstr(vine_last_error(), "another manager") != NULL);
    CHECK(vine_fetch_file(other, mine) == NULL && strstr(vine_last_error(), "another manager"));
    CHECK(vine_prune_file(other, mine) == 0 && strstr(vine_last_error(), "another manager"));
    CHECK_ERR(vine_file_replica_count(other, mine), VINE_ERROR_INVALID_ARGUMENT);
    CHECK(strstr(vine_last_error(), "another manager") != NULL);
    vine_undeclare_file(other, mine);
    CHECK(strstr(vine_last_error(), "another manager") != NULL);
    /* Nor can it make files from it: refused, and a refused mini task is
       still the caller's. */
    CHECK(vine_declare_untar(other, mine, VINE_CACHE_LEVEL_TASK, 0) == NULL);
    CHECK(strstr(vine_last_error(), "another manager") != NULL);
    CHECK(vine_declare_poncho(other, mine, VINE_CACHE_LEVEL_TASK, 0) == NULL);
    CHECK(strstr(vine_last_error(), "another manager") != NULL);
    struct vine_task *maker = vine_task_create("cat in > out");
    CHECK(vine_task_add_input(maker, mine, "in", 0) == 0);
    CHECK(vine_declare_mini_task(other, maker, "out", VINE_CACHE_LEVEL_TASK, 0) == NULL);
    CHECK(strstr(vine_last_error(), "another manager") != NULL);
    CHECK(vine_task_set_tag(maker, "still the caller's") == 0);
    CHECK(vine_task_delete(maker) == 0);
    CHECK(vine_submit(m, c) > 0);
    CHECK(vine_wait(m, LONG) == c && vine_task_get_result(c) == VINE_RESULT_SUCCESS);
    CHECK(vine_task_get_stdout(c) && strcmp(vine_task_get_stdout(c), "mine") == 0);
    CHECK(vine_task_delete(c) == 0);
    vine_delete(other);

    CHECK(vine_shutdown(m) == 0);
    CHECK(vine_shutdown(m) == 0);
    struct vine_task *late = vine_task_create("true");
    CHECK_ERR(vine_submit(m, late), 0);
    CHECK(vine_task_delete(late) == 0); /* the caller still owns it */
    CHECK(vine_hungry(m) == 0);
    vine_delete(m);
    /* A deleted manager is detected, never used. */
    CHECK_ERR(vine_submit(m, NULL), 0);
    CHECK(vine_wait(m, 0) == NULL);
    CHECK_ERR(vine_tune(m, "max-retries", 1), VINE_ERROR_INVALID_HANDLE);
    CHECK_ERR(vine_empty(m), VINE_ERROR_INVALID_HANDLE);
    vine_delete(m);
    /* Still detected once other managers, files and factories are made in its
       place: a handle is never given twice, whatever memory is reused. */
    struct vine_file *gone_file = NULL;
    struct vine_factory *gone_factory = NULL;
    for (int i = 0; i < 4; i++) {
        struct vine_manager *again = vine_create(0); /* a factory needs a port */
        CHECK(again != NULL && again != m);
        CHECK_ERR(vine_empty(m), VINE_ERROR_INVALID_HANDLE);
        struct vine_file *file = vine_declare_buffer(again, "x", 1, VINE_CACHE_LEVEL_TASK, 0);
        struct vine_factory *factory = vine_factory_create(again, "local");
        CHECK(file != NULL && factory != NULL);
        CHECK(file != gone_file && factory != gone_factory);
        if (gone_file) {
            CHECK(vine_file_contents(gone_file) == NULL);
            CHECK(vine_last_error_code() == VINE_ERROR_INVALID_HANDLE);
            CHECK_ERR(vine_factory_set(gone_factory, "max-workers", 1), VINE_ERROR_INVALID_HANDLE);
        }
        gone_file = file;
        gone_factory = factory;
        vine_delete(again);
    }
    /* vine_hungry counts: hungry-factor tasks per slot of the pool, none waiting,
       and at least hungry-minimum (TaskVine's 10). */
    struct vine_manager *h = manager(1);
    int want = vine_hungry(h);
    CHECK(want >= 10 && want % 2 == 0);
    CHECK(vine_tune(h, "hungry-minimum", 0) == 0);
    want = vine_hungry(h);
    CHECK(want >= 2 && want % 2 == 0);
    /* TaskVine's name for the factor. */
    CHECK(vine_tune(h, "hungry-minimum-factor", 5) == 0);
    want = vine_hungry(h);
    CHECK(want >= 5 && want % 5 == 0);
    CHECK(vine_tune(h, "hungry-factor", 7) == 0);
    want = vine_hungry(h);
    CHECK(want >= 7 && want % 7 == 0);
    vine_delete(h);
}

/* A function task's output as a string (NULL if it has none or it is long). */
static const char *output_of(struct vine_task *t)
{
    static char buf[4096];
    size_t n = 0;
    const char *o = vine_task_get_output(t, &n);
    if (!o || n >= sizeof buf)
        return NULL;
    memcpy(buf, o, n);
    buf[n] = 0;
    return buf;
}

/* In a PROCESS function's process the manager's threads do not exist: each call
   on the manager or a file there must fail at once, never hang or pretend. */
static struct vine_manager *parent_manager;
static struct vine_file *parent_file;

static int calls_the_manager(const void *in, size_t len, struct vine_buffer *out, void *ctx)
{
    (void)in; (void)len; (void)ctx;
    struct vine_stats st;
    struct vine_task *t = vine_task_create("true");
    int results[] = {
        vine_submit(parent_manager, t),
        vine_get_stats(parent_manager, &st),
        vine_cancel_by_task_id(parent_manager, 999),
        vine_tune(parent_manager, "prefetch", 2),
        vine_empty(parent_manager),
        vine_file_replica_count(parent_manager, parent_file),
        vine_register_function("in_the_child", echo),
    };
    char line[64];
    for (size_t i = 0; i < sizeof results / sizeof results[0]; i++) {
        int n = snprintf(line, sizeof line, "%d ", results[i]);
        vine_buffer_append(out, line, (size_t)n);
    }
    vine_buffer_append(out, vine_last_error(), strlen(vine_last_error()));
    vine_task_delete(t);
    return 0;
}

static void test_manager_calls_from_a_process_function(void)
{
    if (getenv("VINE_HARNESS_VALGRIND")) {
        /* valgrind checks a forked child for leaks as it exits, counts blocks the
           parent's other threads hold as lost, and ends the child with its
           error exit code: the task would fail for valgrind's reasons. */
        printf("SKIPPED under valgrind: manager calls from a PROCESS function\n");
        return;
    }
    parent_manager = manager(1);
    parent_file = vine_declare_buffer(parent_manager, "x", 1, VINE_CACHE_LEVEL_TASK, 0);
    struct vine_task *t = vine_task_create_local(calls_the_manager, NULL, NULL, 0);
    CHECK(vine_task_set_exec_mode(t, VINE_EXEC_PROCESS) == 0);
    CHECK(vine_submit(parent_manager, t) > 0);
    CHECK(vine_wait(parent_manager, LONG) == t);
    CHECK(vine_task_get_result(t) == VINE_RESULT_SUCCESS);
    char expect[128];
    snprintf(expect, sizeof expect, "0 %d %d %d %d %d %d ", VINE_ERROR_UNSUPPORTED,
             VINE_ERROR_UNSUPPORTED, VINE_ERROR_UNSUPPORTED, VINE_ERROR_UNSUPPORTED,
             VINE_ERROR_UNSUPPORTED, VINE_ERROR_UNSUPPORTED);
    const char *got = output_of(t);
    CHECK(got && strncmp(got, expect, strlen(expect)) == 0);
    CHECK(got && strstr(got, "VINE_EXEC_PROCESS") != NULL);
    vine_task_delete(t);
    /* Nothing the child did reached the manager. */
    CHECK(vine_empty(parent_manager) == 1);
    CHECK(vine_wait(parent_manager, 0) == NULL);
    vine_delete(parent_manager);
}

/* After fork(), the child cannot use a manager made before it (its threads
   stayed in the parent): every call is refused at once, none waits forever,
   and the child can make a manager of its own. The parent goes on. */
static void test_fork_after_create(void)
{
    if (getenv("VINE_HARNESS_VALGRIND")) {
        printf("SKIPPED under valgrind: a forked child's calls\n");
        return;
    }
    struct vine_manager *m = manager(1);
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        failed = 0;
        struct vine_task *t = vine_task_create("true");
        CHECK(vine_submit(m, t) == 0 && vine_last_error_code() == VINE_ERROR_UNSUPPORTED);
        CHECK(strstr(vine_last_error(), "forked") != NULL);
        struct vine_stats st;
        CHECK_ERR(vine_get_stats(m, &st), VINE_ERROR_UNSUPPORTED);
        CHECK(vine_wait(m, 5) == NULL && vine_last_error_code() == VINE_ERROR_UNSUPPORTED);
        CHECK(vine_tune(m, "hungry-factor", 3) == VINE_ERROR_UNSUPPORTED);
        CHECK(vine_cancel_all(m) < 0);
        vine_delete(m);
        CHECK(vine_last_error_code() == VINE_ERROR_UNSUPPORTED);
        /* A manager of the child's own works. */
        struct vine_manager *mine = vine_create(VINE_PORT_NONE);
        CHECK(mine != NULL);
        if (mine) {
            CHECK(vine_submit(mine, t) > 0);
            CHECK(vine_wait(mine, LONG) == t && vine_task_get_result(t) == VINE_RESULT_SUCCESS);
            vine_delete(mine);
        }
        vine_task_delete(t);
        fflush(NULL);
        _exit(failed == 0 ? 0 : 1);
    }
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    /* The parent's manager is untouched. */
    struct vine_task *t = vine_task_create("true");
    CHECK(vine_submit(m, t) > 0);
    CHECK(vine_wait(m, LONG) == t && vine_task_get_result(t) == VINE_RESULT_SUCCESS);
    vine_task_delete(t);
    CHECK(vine_empty(m) == 1);
    vine_delete(m);
}

/* Returns 0 if its input is aligned for any C type and its first double reads
   back as 2.5. */
static int aligned_input(const void *in, size_t len, struct vine_buffer *out, void *ctx)
{
    (void)out; (void)ctx;
    if ((uintptr_t)in % 16 != 0) return 1;
    if (len >= sizeof(double) && *(const double *)in != 2.5) return 2;
    return 0;
}

/* A function's input is aligned as malloc's memory is, short (kept inside the
   task) or long, on a thread or in a process of its own. */
static void test_input_alignment(void)
{
    struct vine_manager *m = manager(1);
    double values[16];
    for (int i = 0; i < 16; i++) values[i] = 2.5;
    const size_t lens[] = {1, 8, 16, 22, 23, 24, 128};
    /* Under valgrind a PROCESS function's child ends with valgrind's exit code
       (see test_manager_calls_from_a_process_function): threads only. */
    int modes = getenv("VINE_HARNESS_VALGRIND") ? 1 : 2;
    for (int mode = 0; mode < modes; mode++) {
        for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
            struct vine_task *t = vine_task_create_local(aligned_input, NULL, values, lens[i]);
            if (mode) CHECK(vine_task_set_exec_mode(t, VINE_EXEC_PROCESS) == 0);
            CHECK(vine_submit(m, t) > 0);
            CHECK(vine_wait(m, LONG) == t);
            CHECK(vine_task_get_result(t) == VINE_RESULT_SUCCESS && vine_task_get_exit_code(t) == 0);
            vine_task_delete(t);
        }
    }
    vine_delete(m);
}

/* A program that ignores SIGCHLD has its children reaped by the system before
   their exit status can be read: a command then fails, and says why. */
static void test_sigchld_ignored(void)
{
    struct vine_manager *m = manager(1);
    struct sigaction ign = {0}, old;
    ign.sa_handler = SIG_IGN;
    CHECK(sigaction(SIGCHLD, &ign, &old) == 0);
    struct vine_task *t = vine_task_create("true");
    CHECK(vine_task_set_retries(t, 1) == 0);
    CHECK(vine_submit(m, t) > 0);
    CHECK(vine_wait(m, LONG) == t);
    CHECK(vine_task_get_result(t) != VINE_RESULT_SUCCESS);
    const char *why = vine_task_get_reason(t);
    CHECK(why && strstr(why, "ignores SIGCHLD") != NULL);
    CHECK(sigaction(SIGCHLD, &old, NULL) == 0);
    /* Back to the default: commands run again. */
    CHECK(vine_submit(m, t) > 0);
    CHECK(vine_wait(m, LONG) == t && vine_task_get_result(t) == VINE_RESULT_SUCCESS);
    vine_task_delete(t);
    vine_delete(m);
}

/* A PROCESS function that calls exit() flushes the stdio buffers its process
   inherited: what the program had not written yet must not come out twice. */
static int child_exiting;

#ifdef __SANITIZE_ADDRESS__
/* LeakSanitizer asks this at exit: the child's exit(3) below would check the
   heap it copied from the parent, whose other threads' blocks look lost. */
int __lsan_is_turned_off(void);
int __lsan_is_turned_off(void)
{
    return child_exiting;
}
#endif

static int exits_3(const void *in, size_t len, struct vine_buffer *out, void *ctx)
{
    (void)in; (void)len; (void)out; (void)ctx;
    child_exiting = 1; /* in the child only: the parent's copy is untouched */
    exit(3);
}

static void test_process_exit_writes_no_stdio_twice(void)
{
    char tmpl[] = "/tmp/vine-stdio-XXXXXX";
    int fd = mkstemp(tmpl);
    CHECK(fd >= 0);
    fflush(stdout);
    int saved = dup(1);
    CHECK(saved >= 0 && dup2(fd, 1) == 1);
    printf("pending in the buffer"); /* no newline: not written yet */
    struct vine_manager *m = manager(1);
    struct vine_task *t = vine_task_create_local(exits_3, NULL, NULL, 0);
    CHECK(vine_task_set_exec_mode(t, VINE_EXEC_PROCESS) == 0);
    CHECK(vine_submit(m, t) > 0);
    CHECK(vine_wait(m, LONG) == t);
    vine_task_delete(t);
    vine_delete(m);
    fflush(stdout);
    CHECK(dup2(saved, 1) == 1);
    close(saved);
    char buf[256] = {0};
    CHECK(pread(fd, buf, sizeof buf - 1, 0) >= 0);
    CHECK(strcmp(buf, "pending in the buffer") == 0);
    close(fd);
    unlink(tmpl);
}

/* Closes every descriptor but the standard ones, then returns 0. */
static int closes_all(const void *in, size_t len, struct vine_buffer *out, void *ctx)
{
    (void)in; (void)len; (void)out; (void)ctx;
    for (int fd = 3; fd < 4096; fd++) close(fd);
    return 0;
}

/* A PROCESS function that closes the descriptor its result travels through
   is reported as such, not only as an exit it never made. */
static void test_process_closing_every_descriptor(void)
{
    if (getenv("VINE_HARNESS_VALGRIND")) {
        /* valgrind's own descriptors are closed too, and its exit code replaces 111. */
        printf("SKIPPED under valgrind: a PROCESS function closing every descriptor\n");
        return;
    }
    struct vine_manager *m = manager(1);
    struct vine_task *t = vine_task_create_local(closes_all, NULL, NULL, 0);
    CHECK(vine_task_set_exec_mode(t, VINE_EXEC_PROCESS) == 0);
    CHECK(vine_submit(m, t) > 0);
    CHECK(vine_wait(m, LONG) == t);
    CHECK(vine_task_get_result(t) == VINE_RESULT_FUNCTION_ERROR);
    CHECK(vine_task_get_exit_code(t) == 111);
    const char *why = vine_task_get_reason(t);
    CHECK(why && strstr(why, "closed the descriptor") != NULL);
    vine_task_delete(t);
    vine_delete(m);
}

/* A copy larger than the memory the library can have is an error, never an
   abort of the program: 64 GiB of mapped, never touched zero pages. */
static int appends_too_much(const void *in, size_t len, struct vine_buffer *out, void *ctx)
{
    (void)len; (void)ctx;
    int rc = vine_buffer_append(out, in, (size_t)1 << 62);
    if (rc == VINE_ERROR_INVALID_ARGUMENT && strstr(vine_last_error(), "memory"))
        vine_buffer_append(out, "refused", 7);
    return 0;
}

static void test_copies_too_large_for_memory(void)
{
    size_t huge = (size_t)1 << 36;
    void *p = mmap(NULL, huge, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
        printf("SKIPPED: copies too large for memory (cannot map 64 GiB)\n");
        return;
    }
    struct vine_manager *m = manager(1);
    CHECK(vine_task_create_function("echo", p, huge) == NULL);
    CHECK(vine_last_error_code() == VINE_ERROR_INVALID_ARGUMENT);
    CHECK(strstr(vine_last_error(), "memory") != NULL);
    CHECK(vine_task_create_local(echo, NULL, p, huge) == NULL);
    CHECK(vine_last_error_code() == VINE_ERROR_INVALID_ARGUMENT);
    CHECK(vine_declare_buffer(m, p, huge, VINE_CACHE_LEVEL_TASK, 0) == NULL);
    CHECK(vine_last_error_code() == VINE_ERROR_INVALID_ARGUMENT);
    /* A task function appending more than there is: the task ends, the program
       goes on. */
    struct vine_task *t = vine_task_create_local(appends_too_much, NULL, p, 1);
    CHECK(vine_submit(m, t) > 0);
    CHECK(vine_wait(m, LONG) == t);
    CHECK(output_of(t) && strcmp(output_of(t), "refused") == 0);
    vine_task_delete(t);
    vine_delete(m);
    munmap(p, huge);
}

/* A failing vine_create says why in errno too. */
static void test_create_sets_errno(void)
{
    struct vine_manager *m = vine_create(0);
    CHECK(m != NULL);
    if (!m) return;
    errno = 0;
    CHECK(vine_create(vine_port(m)) == NULL);
    CHECK(errno == EADDRINUSE);
    errno = 0;
    CHECK(vine_create(70000) == NULL);
    CHECK(errno == EINVAL);
    errno = 0;
    CHECK(vine_ssl_create_self_signed(VINE_PORT_NONE) == NULL);
    CHECK(errno == EINVAL);
    vine_delete(m);
}

/* A submitted task's command, tag, category and id read as they were set, while
   the manager has it (until vine_wait returns it). */
static void test_submitted_task_fields(void)
{
    struct vine_manager *m = manager(1);
    struct vine_task *t = vine_task_create("echo fields");
    CHECK(vine_task_set_tag(t, "the-tag") == 0);
    CHECK(vine_task_set_category(t, "the-category") == 0);
    struct vine_task *f = vine_task_create_function("echo", "f", 1);
    CHECK(strcmp(vine_task_get_category(f), "default") == 0);
    int id = vine_submit(m, t);
    int fid = vine_submit(m, f);
    CHECK(id >= 1 && fid >= 1);
    CHECK(vine_task_get_id(t) == id);
    const char *command = vine_task_get_command(t);
    const char *tag = vine_task_get_tag(t);
    const char *category = vine_task_get_category(t);
    CHECK(command && strcmp(command, "echo fields") == 0);
    CHECK(tag && strcmp(tag, "the-tag") == 0);
    CHECK(category && strcmp(category, "the-category") == 0);
    CHECK(vine_task_get_command(f) == NULL);
    CHECK(vine_task_get_tag(f) == NULL);
    /* Submitted under autocategory (the default): counted under its function's
       name, and says so. */
    CHECK(vine_task_get_category(f) && strcmp(vine_task_get_category(f), "echo") == 0);
    CHECK(vine_task_set_tag(t, "changed") == VINE_ERROR_TASK_SUBMITTED);
    CHECK(vine_wait_for_task_id(m, id, LONG) == t);
    CHECK(vine_wait_for_task_id(m, fid, LONG) == f);
    CHECK(strcmp(vine_task_get_command(t), "echo fields") == 0);
    CHECK(strcmp(vine_task_get_tag(t), "the-tag") == 0);
    CHECK(vine_task_delete(t) == 0);
    CHECK(vine_task_delete(f) == 0);
    vine_delete(m);
}

/* ---- results of functions --------------------------------------------------- */

static void test_function_results(void)
{
    struct vine_manager *m = manager(2);
    int ten = 10, five = 5;
    CHECK(vine_register_function("echo", echo) == 0); /* the same pair again: fine */
    CHECK_ERR(vine_register_function("echo", echo_other), VINE_ERROR_DUPLICATE_FUNCTION);

    struct vine_task *t = vine_task_create_function("fails_with_7", NULL, 0);
    vine_task_set_tag(t, "seven");
    int failing = vine_submit(m, t);
    int missing = vine_submit(m, vine_task_create_function("never_registered", NULL, 0));
    int local = vine_submit(m, vine_task_create_local(add_context, &ten, &five, sizeof five));

    t = vine_wait_for_tag(m, "seven", LONG);
    CHECK(t && vine_task_get_id(t) == failing);
    CHECK(vine_task_get_result(t) == VINE_RESULT_FUNCTION_ERROR);
    CHECK(vine_task_get_exit_code(t) == 7);
    size_t n;
    const char *out = vine_task_get_output(t, &n);
    CHECK(n == 7 && memcmp(out, "partial", 7) == 0);
    CHECK(vine_task_get_reason(t) != NULL);
    CHECK(strcmp(vine_task_get_tag(t), "seven") == 0);
    CHECK(strcmp(vine_task_get_category(t), "fails_with_7") == 0); /* autocategory */
    vine_task_delete(t);

    t = vine_wait_for_task_id(m, missing, LONG);
    CHECK(t && vine_task_get_result(t) == VINE_RESULT_MISSING_FUNCTION);
    vine_task_delete(t);

    t = vine_wait_for_task_id(m, local, LONG);
    CHECK(t && vine_task_get_result(t) == VINE_RESULT_SUCCESS);
    const int *sum = vine_task_get_output(t, &n);
    CHECK(n == sizeof(int) && *sum == 15);
    CHECK(vine_task_get_metric(t, "time_when_submitted") <= vine_task_get_metric(t, "time_when_started"));
    CHECK(vine_task_get_metric(t, "time_when_started") <= vine_task_get_metric(t, "time_when_done"));
    CHECK(vine_task_get_metric(t, "time_workers_execute") >= 0);
    CHECK(vine_task_get_metric(t, "retries") == 0);
    CHECK(vine_task_get_metric(t, "cores") == 1000);
    /* TaskVine's names. */
    CHECK(vine_task_get_metric(t, "time_when_commit_start") == vine_task_get_metric(t, "time_when_started"));
    CHECK(vine_task_get_metric(t, "time_when_retrieval") == vine_task_get_metric(t, "time_when_done"));
    CHECK(vine_task_get_metric(t, "time_workers_execute_all") == vine_task_get_metric(t, "time_workers_execute"));
    CHECK(vine_task_get_metric(t, "time_workers_execute_last") ==
          vine_task_get_metric(t, "time_when_done") - vine_task_get_metric(t, "time_when_started"));
    CHECK(vine_task_get_metric(t, "time_workers_execute_failure") == 0);
    CHECK(vine_task_get_metric(t, "time_workers_execute_exhaustion") == 0);
    CHECK(vine_task_get_metric(t, "bytes_transferred") == 0);
    vine_task_delete(t);

    /* Too large for the pool, and no remote workers may join. */
    t = vine_task_create_function("echo", NULL, 0);
    vine_task_set_cores(t, 3);
    int big = vine_submit(m, t);
    t = vine_wait(m, LONG);
    CHECK(t && vine_task_get_id(t) == big && vine_task_get_result(t) == VINE_RESULT_UNSCHEDULABLE);
    vine_task_delete(t);

    struct vine_stats s;
    CHECK(vine_get_stats(m, &s) == 0);
    CHECK(s.tasks_submitted == 4 && s.tasks_done == 4 && s.tasks_failed == 3);
    CHECK(s.total_cores == 2 && s.total_cores_exact == 2.0 && s.tasks_waiting == 0 && s.workers_connected == 1);
    vine_delete(m);
}

/* ---- many threads ------------------------------------------------------------- */

#define THREADS 4
static int per_thread = 25000;
static struct vine_manager *shared;
static unsigned char *seen;

static void *submitter(void *arg)
{
    int k = (int)(intptr_t)arg;
    for (int i = 0; i < per_thread; i++) {
        int value = k * per_thread + i;
        struct vine_task *t = vine_task_create_function("checksum", &value, sizeof value);
        vine_task_set_tag(t, "mt");
        vine_task_delete(t); /* a task never submitted is simply freed */
        t = vine_task_create_function("checksum", &value, sizeof value);
        if (!vine_submit(shared, t)) {
            fprintf(stderr, "submit failed: %s\n", vine_last_error());
            exit(1);
        }
    }
    return NULL;
}

static void *waiter(void *arg)
{
    long *count = arg;
    struct vine_task *t;
    while (*count < (long)THREADS * per_thread / 2 && (t = vine_wait(shared, LONG))) {
        size_t n;
        if (vine_task_get_result(t) == VINE_RESULT_SUCCESS && vine_task_get_output(t, &n) && n == 8)
            __atomic_fetch_add(&seen[vine_task_get_id(t)], 1, __ATOMIC_RELAXED);
        vine_task_delete(t);
        (*count)++;
    }
    return NULL;
}

static int checksum_of(int value)
{
    uint64_t h = 1469598103934665603ull;
    const unsigned char *p = (const unsigned char *)&value;
    for (size_t i = 0; i < sizeof value; i++) h = (h ^ p[i]) * 1099511628211ull;
    return (int)(h & 0x7fffffff);
}

static void test_many_threads(void)
{
    if (getenv("VINE_HARNESS_SMALL")) per_thread = 2500;
    int total = THREADS * per_thread;
    shared = manager(2);
    seen = calloc((size_t)total * 2 + 16, 1);
    pthread_t sub[THREADS], wait[2];
    long counts[2] = {0, 0};
    for (int k = 0; k < THREADS; k++) pthread_create(&sub[k], NULL, submitter, (void *)(intptr_t)k);
    for (int k = 0; k < 2; k++) pthread_create(&wait[k], NULL, waiter, &counts[k]);
    for (int k = 0; k < THREADS; k++) pthread_join(sub[k], NULL);
    for (int k = 0; k < 2; k++) pthread_join(wait[k], NULL);
    /* Whatever the two waiters left comes back here: each stops at half, or
     * early when it found nothing outstanding between two submissions. */
    struct vine_task *t;
    long rest = 0;
    while ((t = vine_wait(shared, LONG))) {
        seen[vine_task_get_id(t)]++;
        vine_task_delete(t);
        rest++;
    }
    CHECK(counts[0] + counts[1] + rest == total);
    int once = 0;
    for (int id = 1; id <= total; id++) once += seen[id] == 1;
    CHECK(once == total);
    CHECK(vine_empty(shared) == 1);

    /* Outputs are each task's own: check a sample through wait_for_task_id. */
    int ok = 1;
    for (int value = 0; value < 200; value++) {
        int id = vine_submit(shared, vine_task_create_function("checksum", &value, sizeof value));
        t = vine_wait_for_task_id(shared, id, LONG);
        size_t n;
        const uint64_t *h = t ? vine_task_get_output(t, &n) : NULL;
        ok &= h && n == 8 && (int)(*h & 0x7fffffff) == checksum_of(value);
        vine_task_delete(t);
    }
    CHECK(ok);
    free(seen);
    vine_delete(shared);
}

/* Files declared by two threads while a third deletes their manager: each
   call fails, or gives a file that goes with the manager. */
#define DECLARES 200
struct declarer {
    struct vine_manager *m;
    struct vine_file *got[DECLARES];
    int n;
};

static void *declare_buffers(void *arg)
{
    struct declarer *d = arg;
    for (int i = 0; i < DECLARES; i++) {
        struct vine_file *f = vine_declare_buffer(d->m, "x", 1, VINE_CACHE_LEVEL_TASK, 0);
        if (f) d->got[d->n++] = f;
    }
    return NULL;
}

static void test_declaring_while_the_manager_is_deleted(void)
{
    static struct declarer d[2];
    int outlived = 0;
    for (int round = 0; round < 10; round++) {
        struct vine_manager *m = manager(1);
        pthread_t th[2];
        for (int k = 0; k < 2; k++) {
            d[k].m = m;
            d[k].n = 0;
            pthread_create(&th[k], NULL, declare_buffers, &d[k]);
        }
        vine_delete(m);
        for (int k = 0; k < 2; k++) pthread_join(th[k], NULL);
        for (int k = 0; k < 2; k++)
            for (int i = 0; i < d[k].n; i++) outlived += vine_file_source(d[k].got[i]) != NULL;
    }
    CHECK(outlived == 0);
}

/* ---- commands and files --------------------------------------------------------- */

static char dir[256];

static char *path(const char *name)
{
    static char buf[8][512];
    static int next;
    char *p = buf[next++ % 8];
    snprintf(p, 512, "%s/%s", dir, name);
    return p;
}

static void write_file(const char *p, const char *text)
{
    FILE *f = fopen(p, "w");
    fputs(text, f);
    fclose(f);
}

static int file_equals(const char *p, const char *text)
{
    char buf[4096] = {0};
    FILE *f = fopen(p, "r");
    if (!f) return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    return n == strlen(text) && memcmp(buf, text, n) == 0;
}

static struct vine_task *run(struct vine_manager *m, struct vine_task *t)
{
    int id = vine_submit(m, t);
    CHECK(id > 0);
    struct vine_task *back = vine_wait_for_task_id(m, id, LONG);
    CHECK(back == t);
    return back;
}

static void test_commands_and_files(void)
{
    struct vine_manager *m = manager(2);
    snprintf(dir, sizeof dir, "/tmp/vine-capi-XXXXXX");
    CHECK(mkdtemp(dir) != NULL);

    struct vine_task *t = vine_task_create("echo out; echo err >&2; exit 3");
    t = run(m, t);
    CHECK(vine_task_get_result(t) == VINE_RESULT_SUCCESS);
    CHECK(vine_task_get_exit_code(t) == 3);
    CHECK(strcmp(vine_task_get_stdout(t), "out\nerr\n") == 0);
    vine_task_delete(t);

    t = vine_task_create("echo $GREETING $OMP_NUM_THREADS $CORES $MKL_NUM_THREADS $MEMORY $DISK");
    vine_task_set_env_var(t, "GREETING", "hello");
    vine_task_set_cores(t, 2);
    vine_task_set_memory(t, 10);
    vine_task_set_disk(t, 5);
    t = run(m, t);
    CHECK(strcmp(vine_task_get_stdout(t), "hello 2 2 2 10 5\n") == 0);
    vine_task_delete(t);

    /* What it holds, as TaskVine's worker says it; its own environment last. */
    t = vine_task_create("echo $CORES $OPENBLAS_NUM_THREADS m=$MEMORY g=$GPUS");
    vine_task_set_env_var(t, "OPENBLAS_NUM_THREADS", "4");
    t = run(m, t);
    CHECK(strcmp(vine_task_get_stdout(t), "1 4 m= g=\n") == 0);
    vine_task_delete(t);

    /* An output of that name is the output, and TMPDIR is left alone. */
    t = vine_task_create("echo data > .vine.tmp && test \"$TMPDIR\" != \"$VINE_SANDBOX/.vine.tmp\"");
    struct vine_file *vt = vine_declare_buffer(m, NULL, 0, VINE_CACHE_LEVEL_TASK, 0);
    CHECK(vine_task_add_output(t, vt, ".vine.tmp", 0) == 0);
    t = run(m, t);
    CHECK(vine_task_get_result(t) == VINE_RESULT_SUCCESS && vine_task_get_exit_code(t) == 0);
    CHECK(vine_file_size(vt) == 5);
    vine_task_delete(t);

    /* Temporary files go in the sandbox, and go with it. */
    t = vine_task_create("test \"$TMPDIR\" = \"$VINE_SANDBOX/.vine.tmp\" && test \"$TMP$TEMP\" = \"$TMPDIR$TMPDIR\""
                         " && mktemp > /dev/null && ls \"$TMPDIR\" | wc -l");
    t = run(m, t);
    CHECK(vine_task_get_exit_code(t) == 0);
    CHECK(strcmp(vine_task_get_stdout(t), "1\n") == 0);
    vine_task_delete(t);

    t = vine_task_create("exec sleep 30");
    vine_task_set_time_max(t, 0.2);
    t = run(m, t);
    CHECK(vine_task_get_result(t) == VINE_RESULT_MAX_WALL_TIME);
    vine_task_delete(t);

    CHECK(vine_tune(m, "max-stdout", 1000) == 0);
    t = vine_task_create("yes abcdefgh | head -c 100000");
    t = run(m, t);
    CHECK(vine_task_get_result(t) == VINE_RESULT_STDOUT_MISSING);
    CHECK(strlen(vine_task_get_stdout(t)) == 1000);
    CHECK(strncmp(vine_task_get_stdout(t), "abcdefgh\n", 9) == 0);
    vine_task_delete(t);

    /* A script shipped as a buffer runs as ./script (buffers are 0755); a file's
       mode is set with vine_file_set_mode; an output directory made by MKDIR. */
    const char *script = "#!/bin/sh\necho script $1\n";
    struct vine_file *sbuf = vine_declare_buffer(m, script, strlen(script), VINE_CACHE_LEVEL_TASK, 0);
    write_file(path("plain.sh"), script);
    CHECK(chmod(path("plain.sh"), 0644) == 0);
    struct vine_file *sfile = vine_declare_file(m, path("plain.sh"), VINE_CACHE_LEVEL_TASK, 0);
    CHECK(vine_file_set_mode(sfile, 0700) == 0);
    CHECK_ERR(vine_file_set_mode(NULL, 0700), VINE_ERROR_NULL);
    CHECK_ERR(vine_file_set_mode(sfile, -1), VINE_ERROR_INVALID_ARGUMENT);
    struct vine_file *outdir = vine_declare_file(m, path("outdir"), VINE_CACHE_LEVEL_TASK, 0);
    t = vine_task_create("./a.sh A > d/a && ./b.sh B > d/b");
    CHECK(vine_task_add_input(t, sbuf, "a.sh", VINE_TRANSFER_ALWAYS) == 0);
    CHECK(vine_task_add_input(t, sfile, "b.sh", 0) == 0);
    CHECK(vine_task_add_output(t, outdir, "d", VINE_MOUNT_MKDIR) == 0);
    t = run(m, t);
    CHECK(vine_task_get_result(t) == VINE_RESULT_SUCCESS);
    CHECK(vine_task_get_exit_code(t) == 0);
    vine_task_delete(t);
    CHECK(file_equals(path("outdir/a"), "script A\n"));
    CHECK(file_equals(path("outdir/b"), "script B\n"));

    /* Inputs under remote names, a buffer, outputs to a path and a buffer. */
    write_file(path("numbers.txt"), "3\n1\n2\n");
    struct vine_file *numbers = vine_declare_file(m, path("numbers.txt"), VINE_CACHE_LEVEL_WORKFLOW, 0);
    struct vine_file *param = vine_declare_buffer(m, "-r", 2, VINE_CACHE_LEVEL_TASK, 0);
    struct vine_file *sorted = vine_declare_file(m, path("sorted.txt"), VINE_CACHE_LEVEL_TASK, 0);
    struct vine_file *count = vine_declare_buffer(m, NULL, 0, VINE_CACHE_LEVEL_TASK, 0);
    struct vine_file *temp = vine_declare_temp(m);
    CHECK(numbers && param && sorted && count && temp);
    errno = 0;
    CHECK(vine_fetch_file(m, temp) == NULL); /* not produced yet */
    CHECK(errno == ENOENT);                  /* as in TaskVine */

    t = vine_task_create("sort $(cat flag) data/in.txt > sorted.txt; wc -l < data/in.txt > count; "
                         "echo kept > t.txt");
    CHECK(vine_task_add_input(t, numbers, "data/in.txt", 0) == 0);
    CHECK(vine_task_add_input(t, param, "flag", 0) == 0);
    CHECK(vine_task_add_output(t, sorted, "sorted.txt", 0) == 0);
    CHECK(vine_task_add_output(t, count, "count", 0) == 0);
    CHECK(vine_task_add_output(t, temp, "t.txt", 0) == 0);
    t = run(m, t);
    CHECK(vine_task_get_result(t) == VINE_RESULT_SUCCESS);
    vine_task_delete(t);
    CHECK(file_equals(path("sorted.txt"), "3\n2\n1\n"));
    const char *c = vine_fetch_file(m, count);
    CHECK(c && strcmp(c, "3\n") == 0 && vine_file_size(count) == 2);
    c = vine_fetch_file(m, temp);
    CHECK(c && strcmp(c, "kept\n") == 0);
    /* The size that goes with the bytes fetched, whatever the file holds since,
       NUL bytes and all. */
    size_t len = 0;
    c = vine_fetch_file_len(m, sorted, &len);
    CHECK(c && len == 6 && memcmp(c, "3\n2\n1\n", 7) == 0);
    FILE *grow = fopen(path("sorted.txt"), "a");
    CHECK(grow && fputs("0\n", grow) >= 0 && fclose(grow) == 0);
    CHECK(vine_file_size(sorted) == 8 && len == 6);
    /* Fetched again: the new bytes; the old pointer still holds the old ones;
       and unchanged contents fetched again are the same copy. */
    const char *old_bytes = c;
    const char *grown = vine_fetch_file_len(m, sorted, &len);
    CHECK(grown && len == 8 && memcmp(grown, "3\n2\n1\n0\n", 9) == 0);
    CHECK(memcmp(old_bytes, "3\n2\n1\n", 7) == 0);
    CHECK(vine_fetch_file(m, sorted) == grown && vine_fetch_file(m, sorted) == grown);
    struct vine_file *zeros = vine_declare_buffer(m, "a\0b\0", 4, VINE_CACHE_LEVEL_TASK, 0);
    c = vine_fetch_file_len(m, zeros, &len);
    CHECK(c && len == 4 && memcmp(c, "a\0b\0", 5) == 0);

    /* A temp feeds a later task. */
    t = vine_task_create("cat in");
    vine_task_add_input(t, temp, "in", 0);
    t = run(m, t);
    CHECK(vine_task_get_result(t) == VINE_RESULT_SUCCESS && strcmp(vine_task_get_stdout(t), "kept\n") == 0);
    vine_task_delete(t);

    /* Missing input, missing output. */
    struct vine_file *absent = vine_declare_file(m, path("absent"), VINE_CACHE_LEVEL_TASK, 0);
    t = vine_task_create("echo never");
    vine_task_add_input(t, absent, "x", 0);
    t = run(m, t);
    CHECK(vine_task_get_result(t) == VINE_RESULT_INPUT_MISSING);
    CHECK(vine_task_get_reason(t) != NULL);
    vine_task_delete(t);
    struct vine_file *never = vine_declare_file(m, path("never"), VINE_CACHE_LEVEL_TASK, 0);
    t = vine_task_create("true");
    vine_task_add_output(t, never, "not-made", 0);
    t = run(m, t);
    CHECK(vine_task_get_result(t) == VINE_RESULT_OUTPUT_MISSING);
    vine_task_delete(t);

    /* What vine_fetch_file and vine_file_source returned stays valid until
       vine_delete, even once the files are undeclared (ASan and valgrind
       check the reads below). */
    struct vine_file *gone = vine_declare_buffer(m, "bytes", 5, VINE_CACHE_LEVEL_TASK, 0);
    const char *fetched = vine_fetch_file(m, gone);
    const char *source = vine_file_source(gone);
    const char *temp_fetched = vine_fetch_file(m, temp);
    CHECK(fetched && source && temp_fetched);
    vine_undeclare_file(m, gone);
    vine_undeclare_file(m, temp);
    CHECK(strcmp(fetched, "bytes") == 0 && strcmp(source, "buffer") == 0);
    CHECK(strcmp(temp_fetched, "kept\n") == 0);

    /* Functions take bytes, not files. */
    t = vine_task_create_function("echo", NULL, 0);
    CHECK_ERR(vine_task_add_input(t, numbers, "x", 0), VINE_ERROR_UNSUPPORTED);
    vine_task_delete(t);
    vine_delete(m);
    /* A deleted manager's files are no longer accepted. */
    t = vine_task_create("true");
    CHECK_ERR(vine_task_add_input(t, numbers, "x", 0), VINE_ERROR_INVALID_HANDLE);
    vine_task_delete(t);

    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
}

/* ---- files from elsewhere ------------------------------------------------------- */

static void test_files_from_elsewhere(void)
{
    struct vine_manager *m = manager(1);
    snprintf(dir, sizeof dir, "/tmp/vine-capi-XXXXXX");
    CHECK(mkdtemp(dir) != NULL);
    char cmd[1200];

    {
        /* The task graph log: a digraph with this task and its input, closed
           when the manager ends. */
        struct vine_manager *g = vine_create(VINE_PORT_NONE);
        CHECK(vine_enable_taskgraph_log(g, path("graph/run.dot")) == 1);
        CHECK(vine_enable_taskgraph_log(NULL, path("g.dot")) == 0);
        CHECK(vine_enable_taskgraph_log(g, NULL) == 0);
        write_file(path("graph-in.txt"), "in\n");
        struct vine_file *in = vine_declare_file(g, path("graph-in.txt"), VINE_CACHE_LEVEL_TASK, 0);
        struct vine_task *gt = vine_task_create("cat i");
        vine_task_add_input(gt, in, "i", 0);
        int id = vine_submit(g, gt);
        CHECK(id > 0);
        gt = vine_wait(g, LONG);
        CHECK(gt != NULL && vine_task_get_result(gt) == VINE_RESULT_SUCCESS);
        vine_task_delete(gt);
        vine_delete(g);
        char got[1000] = {0}, want[200];
        FILE *f = fopen(path("graph/run.dot"), "r");
        CHECK(f != NULL);
        if (f) {
            CHECK(fread(got, 1, sizeof got - 1, f) > 0);
            fclose(f);
        }
        CHECK(strncmp(got, "digraph \"vine\" {\n", 17) == 0);
        snprintf(want, sizeof want, "\"task-%d\" [label=\"%d\"];\n", id, id);
        CHECK(strstr(got, want) != NULL);
        CHECK(strstr(got, "[shape=box,label=\"graph-in.txt\"];\n") != NULL);
        snprintf(want, sizeof want, "\" -> \"task-%d\";\n}\n", id);
        CHECK(strlen(got) > strlen(want) && strcmp(got + strlen(got) - strlen(want), want) == 0);
    }

    /* Types, sources and contents, with TaskVine's values and strings. */
    struct vine_file *buf = vine_declare_buffer(m, "hello", 5, VINE_CACHE_LEVEL_TASK, 0);
    CHECK(vine_file_type(buf) == VINE_BUFFER);
    CHECK(strcmp(vine_file_source(buf), "buffer") == 0);
    CHECK(strcmp(vine_file_contents(buf), "hello") == 0);
    CHECK(vine_file_contents(buf) == vine_file_contents(buf));
    CHECK(vine_file_type(vine_declare_temp(m)) == VINE_TEMP);
    struct vine_file *plain = vine_declare_file(m, path("plain.txt"), VINE_CACHE_LEVEL_TASK, 0);
    CHECK(vine_file_type(plain) == VINE_FILE);
    CHECK(strcmp(vine_file_source(plain), path("plain.txt")) == 0);
    CHECK(vine_file_contents(plain) == NULL);
    CHECK(vine_file_type(NULL) == 0);

    /* A file:// URL, downloaded by the worker. */
    write_file(path("page.txt"), "page\n");
    snprintf(cmd, sizeof cmd, "file://%s", path("page.txt"));
    struct vine_file *url = vine_declare_url(m, cmd, VINE_CACHE_LEVEL_WORKFLOW, 0);
    CHECK(url != NULL);
    CHECK(vine_file_type(url) == VINE_URL);
    CHECK(strcmp(vine_file_source(url), cmd) == 0);
    CHECK(vine_declare_url(m, "ftp://example/x", VINE_CACHE_LEVEL_TASK, 0) == NULL);
    struct vine_task *t = vine_task_create("cat p");
    vine_task_add_input(t, url, "p", 0);
    t = run(m, t);
    CHECK(vine_task_get_result(t) == VINE_RESULT_SUCCESS);
    CHECK(strcmp(vine_task_get_stdout(t), "page\n") == 0);
    vine_task_delete(t);

    /* A mini task's output, an unpacked archive and a poncho environment. */
    struct vine_task *mini = vine_task_create("echo made > out");
    struct vine_file *made = vine_declare_mini_task(m, mini, "out", VINE_CACHE_LEVEL_WORKFLOW, 0);
    CHECK(made != NULL);
    CHECK(vine_file_type(made) == VINE_MINI_TASK);
    CHECK(strcmp(vine_file_source(made), "out") == 0);
    CHECK_ERR(vine_task_delete(mini), VINE_ERROR_TASK_SUBMITTED);
    CHECK(strstr(vine_last_error(), "mini task") != NULL);
    CHECK_ERR(vine_submit(m, mini), 0);
    CHECK(strstr(vine_last_error(), "mini task") != NULL);
    CHECK_ERR(vine_task_set_cores(mini, 1), VINE_ERROR_TASK_SUBMITTED);
    CHECK(strstr(vine_last_error(), "mini task") != NULL);
    /* Nested deeper than workers take: refused, and the task stays the
       caller's, whole. */
    struct vine_file *level = made;
    for (int depth = 2; depth <= 17; depth++) {
        struct vine_task *next = vine_task_create("cat in > out");
        CHECK(vine_task_add_input(next, level, "in", 0) == 0);
        struct vine_file *f = vine_declare_mini_task(m, next, "out", VINE_CACHE_LEVEL_TASK, 0);
        if (depth <= 16) {
            CHECK(f != NULL);
            level = f;
            continue;
        }
        CHECK(f == NULL && strstr(vine_last_error(), "nested 17 deep") != NULL);
        CHECK(vine_task_get_command(next) && strcmp(vine_task_get_command(next), "cat in > out") == 0);
        CHECK(vine_task_set_tag(next, "still the caller's") == 0);
        CHECK(vine_task_delete(next) == 0);
    }
    snprintf(cmd, sizeof cmd,
             "mkdir -p %s/env/bin && echo 'export CAPI_ENV=on' > %s/env/bin/activate && "
             "tar czf %s/env.tar.gz -C %s/env .",
             dir, dir, dir, dir);
    CHECK(system(cmd) == 0);
    struct vine_file *tarball = vine_declare_file(m, path("env.tar.gz"), VINE_CACHE_LEVEL_WORKFLOW, 0);
    struct vine_file *tree = vine_declare_untar(m, tarball, VINE_CACHE_LEVEL_WORKFLOW, 0);
    struct vine_file *env = vine_declare_poncho(m, tarball, VINE_CACHE_LEVEL_WORKFLOW, 0);
    CHECK(tree != NULL && env != NULL);
    /* Made at workers from their sources: refused as outputs when added. */
    t = vine_task_create("true");
    CHECK_ERR(vine_task_add_output(t, url, "u", 0), VINE_ERROR_INVALID_ARGUMENT);
    CHECK(strstr(vine_last_error(), "cannot be an output") != NULL);
    CHECK_ERR(vine_task_add_output(t, made, "m", 0), VINE_ERROR_INVALID_ARGUMENT);
    CHECK_ERR(vine_task_add_output(t, tree, "d", 0), VINE_ERROR_INVALID_ARGUMENT);
    CHECK(vine_task_delete(t) == 0);
    t = vine_task_create("cat m; cat d/bin/activate; echo env=$CAPI_ENV");
    vine_task_add_input(t, made, "m", 0);
    vine_task_add_input(t, tree, "d", 0);
    CHECK(vine_task_add_poncho_package(t, env) == 1);
    CHECK(vine_task_add_poncho_package(t, NULL) == 0);
    /* Not before the command: the task would run the environment alone. */
    struct vine_task *bare = vine_task_create(NULL);
    CHECK(vine_task_add_poncho_package(bare, env) == 0);
    CHECK(strstr(vine_last_error(), "no command") != NULL);
    CHECK(vine_submit(m, bare) == 0);
    CHECK(vine_task_delete(bare) == 0);
    t = run(m, t);
    CHECK(vine_task_get_result(t) == VINE_RESULT_SUCCESS);
    CHECK(strcmp(vine_task_get_stdout(t), "made\nexport CAPI_ENV=on\nenv=on\n") == 0);
    vine_task_delete(t);

    /* Pruned: made again when next needed; undeclared: no longer accepted. */
    CHECK(vine_prune_file(m, made) == 1);
    CHECK(vine_prune_file(m, made) == 0);
    CHECK(vine_prune_file(NULL, made) == 0);
    vine_undeclare_file(m, url);
    t = vine_task_create("true");
    CHECK_ERR(vine_task_add_input(t, url, "p", 0), VINE_ERROR_INVALID_HANDLE);
    vine_task_delete(t);

    vine_delete(m);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
}

/* ---- cancellation and shutdown -------------------------------------------------- */

static void *shut(void *arg)
{
    return (void *)(intptr_t)vine_shutdown(arg);
}

static void test_cancel_and_shutdown(void)
{
    struct vine_manager *m = manager(1);
    CHECK(vine_tune(m, "prefetch", 0) == 0);
    gate_reset();
    int g = vine_submit(m, vine_task_create_function("gated", "g", 1));
    gate_wait_inside(1);
    int a = vine_submit(m, vine_task_create_function("echo", "a", 1));
    int b = vine_submit(m, vine_task_create_function("echo", "b", 1));
    int c = vine_submit(m, vine_task_create_function("echo", "c", 1));
    CHECK(vine_cancel_by_task_id(m, a) == 0);
    struct vine_task *t = vine_wait_for_task_id(m, a, LONG);
    CHECK(t && vine_task_get_result(t) == VINE_RESULT_CANCELLED);
    /* It never ran: no exit code, -1 as in TaskVine (not 0, a success). */
    CHECK(vine_task_get_exit_code(t) == -1);
    vine_task_delete(t);
    CHECK(vine_cancel_all(m) == 3); /* b, c waiting; the gate running */

    /* The running gate comes back cancelled once it returns; b and c at once. */
    int got = 0, cancelled = 0;
    for (int i = 0; i < 2; i++) {
        t = vine_wait(m, LONG);
        got += t != NULL;
        cancelled += t && vine_task_get_result(t) == VINE_RESULT_CANCELLED;
        CHECK(t && (vine_task_get_id(t) == b || vine_task_get_id(t) == c));
        vine_task_delete(t);
    }
    gate_open();
    t = vine_wait(m, LONG);
    CHECK(t && vine_task_get_id(t) == g && vine_task_get_result(t) == VINE_RESULT_CANCELLED);
    vine_task_delete(t);
    CHECK(got == 2 && cancelled == 2);

    /* A running task cancelled twice: both calls say it is cancelled, on either
       lane (an environment keeps a task off the direct lane). */
    for (int lane = 0; lane < 2; lane++) {
        gate_reset();
        struct vine_task *gt = vine_task_create_function("gated", "d", 1);
        if (lane) CHECK(vine_task_set_env_var(gt, "LANE", "manager") == 0);
        int gid = vine_submit(m, gt);
        gate_wait_inside(1);
        CHECK(vine_cancel_by_task_id(m, gid) == 0);
        CHECK(vine_cancel_by_task_id(m, gid) == 0);
        gate_open();
        t = vine_wait(m, LONG);
        CHECK(t == gt && vine_task_get_result(t) == VINE_RESULT_CANCELLED);
        vine_task_delete(t);
        CHECK(vine_cancel_by_task_id(m, gid) == VINE_ERROR_UNKNOWN_TASK);
    }

    /* A task waiting for a core cancelled twice: both calls say it is
       cancelled (it waits in the completion queue after the first). */
    gate_reset();
    int busy = vine_submit(m, vine_task_create_function("gated", "e", 1));
    gate_wait_inside(1);
    int waiting = vine_submit(m, vine_task_create_function("echo", "w", 1));
    CHECK(vine_cancel_by_task_id(m, waiting) == 0);
    CHECK(vine_cancel_by_task_id(m, waiting) == 0);
    t = vine_wait_for_task_id(m, waiting, LONG);
    CHECK(t && vine_task_get_result(t) == VINE_RESULT_CANCELLED);
    vine_task_delete(t);
    CHECK(vine_cancel_by_task_id(m, waiting) == VINE_ERROR_UNKNOWN_TASK);
    gate_open();
    t = vine_wait_for_task_id(m, busy, LONG);
    CHECK(t && vine_task_get_result(t) == VINE_RESULT_SUCCESS);
    vine_task_delete(t);

    /* Shutdown with work outstanding: every task comes back exactly once. */
    gate_reset();
    int running = vine_submit(m, vine_task_create_function("gated", "r", 1));
    gate_wait_inside(1);
    int queued[10];
    for (int i = 0; i < 10; i++) queued[i] = vine_submit(m, vine_task_create_function("echo", "q", 1));
    pthread_t th;
    pthread_create(&th, NULL, shut, m);
    int back[64] = {0};
    for (int i = 0; i < 10; i++) {
        t = vine_wait(m, LONG);
        CHECK(t && vine_task_get_result(t) == VINE_RESULT_CANCELLED);
        if (t) back[vine_task_get_id(t) % 64]++;
        vine_task_delete(t);
    }
    gate_open();
    void *rc;
    pthread_join(th, &rc);
    CHECK((intptr_t)rc == 0);
    t = vine_wait(m, LONG);
    CHECK(t && vine_task_get_id(t) == running && vine_task_get_result(t) == VINE_RESULT_SUCCESS);
    vine_task_delete(t);
    for (int i = 0; i < 10; i++) CHECK(back[queued[i] % 64] == 1);
    CHECK(vine_wait(m, LONG) == NULL);

    /* Deleting a manager with finished tasks nobody waited for frees them. */
    struct vine_manager *m2 = manager(1);
    for (int i = 0; i < 100; i++) vine_submit(m2, vine_task_create_function("echo", "x", 1));
    vine_delete(m2);
    vine_delete(m);
}

/* ---- what a finished task says about its run ------------------------------------------ */

static int nap(const void *in, size_t len, struct vine_buffer *out, void *ctx)
{
    (void)in; (void)len; (void)out; (void)ctx;
    usleep(1000);
    return 0;
}

static void test_what_tasks_report(void)
{
    struct vine_manager *m = manager(2);
    char host[256] = "";
    CHECK(gethostname(host, sizeof host - 1) == 0);

    /* Where it ran: the local threads are this machine and "local", whichever
       lane the task took (an environment keeps it off the direct lane). */
    for (int lane = 0; lane < 2; lane++) {
        struct vine_task *t = vine_task_create_function("echo", "h", 1);
        if (lane) CHECK(vine_task_set_env_var(t, "LANE", "manager") == 0);
        CHECK(vine_submit(m, t) > 0);
        CHECK(vine_wait(m, VINE_WAIT_FOREVER) == t);
        CHECK(vine_task_get_result(t) == VINE_RESULT_SUCCESS);
        CHECK(vine_task_get_hostname(t) && strcmp(vine_task_get_hostname(t), host) == 0);
        CHECK(vine_task_get_addrport(t) && strcmp(vine_task_get_addrport(t), "local") == 0);
        vine_task_delete(t);
    }

    /* A task starts after it was submitted, however soon after the one before
       it ended on the same thread (rounds of one and two short tasks). */
    int early = 0, n = 0;
    for (int round = 0; round < 1000; round++) {
        for (int i = 0; i <= round % 2; i++) vine_submit(m, vine_task_create_local(nap, NULL, NULL, 0));
        struct vine_task *t;
        while ((t = vine_wait(m, LONG))) {
            n++;
            early += vine_task_get_metric(t, "time_when_commit_start") <
                     vine_task_get_metric(t, "time_when_submitted");
            vine_task_delete(t);
        }
    }
    CHECK(n == 1500 && early == 0);

    /* Nothing returned yet: every task counted done is counted with results,
       at every moment, and each submitted task is in exactly one gauge. */
    int inconsistent = 0;
    for (int i = 0; i < 200; i++) vine_submit(m, vine_task_create_local(nap, NULL, NULL, 0));
    struct vine_stats st;
    do {
        if (vine_get_stats(m, &st) != 0) break;
        inconsistent += st.tasks_with_results != st.tasks_done - 1500 - 2 ||
                        st.tasks_waiting + st.tasks_on_workers + st.tasks_with_results !=
                            st.tasks_submitted - 1500 - 2;
    } while (st.tasks_done < 1502 + 200);
    CHECK(st.tasks_done == 1502 + 200 && inconsistent == 0);
    vine_delete(m);
}

/* ---- gpus ---------------------------------------------------------------------------- */

static int report_gpus(const void *in, size_t len, struct vine_buffer *out, void *ctx)
{
    (void)in; (void)len; (void)ctx;
    int ids[8];
    int n = vine_task_gpu_ids(ids, 8);
    return vine_buffer_append(out, ids, sizeof(int) * (size_t)n);
}

static void test_gpus(void)
{
    struct vine_manager *m = manager(4);
    CHECK(vine_tune(m, "local-gpus", 3) == 0);
    struct vine_task *t = vine_task_create_local(report_gpus, NULL, NULL, 0);
    vine_task_set_gpus(t, 2);
    t = run(m, t);
    size_t n;
    const int *ids = vine_task_get_output(t, &n);
    CHECK(n == 2 * sizeof(int) && ids[0] != ids[1] && ids[0] >= 0 && ids[0] < 3 && ids[1] < 3);
    vine_task_delete(t);
    t = vine_task_create("echo $CUDA_VISIBLE_DEVICES");
    vine_task_set_gpus(t, 3);
    t = run(m, t);
    CHECK(vine_task_get_stdout(t) && strlen(vine_task_get_stdout(t)) == strlen("0,1,2\n"));
    vine_task_delete(t);
    vine_delete(m);
}

/* The local pool's resources from the environment; a malformed value is refused. */
static void test_environment(void)
{
    setenv("VINE_LOCAL_CORES", "3.5", 1);
    setenv("VINE_LOCAL_MEMORY", "1234", 1);
    setenv("VINE_LOCAL_GPUS", "2", 1);
    struct vine_manager *m = vine_create(VINE_PORT_NONE);
    struct vine_stats s;
    CHECK(m && vine_get_stats(m, &s) == 0);
    CHECK(s.total_cores_exact == 3.5 && s.total_cores == 4 && s.total_memory == 1234 && s.total_gpus == 2);
    vine_delete(m);
    setenv("VINE_LOCAL_CORES", "lots", 1);
    CHECK(vine_create(VINE_PORT_NONE) == NULL);
    CHECK(strstr(vine_last_error(), "VINE_LOCAL_CORES") != NULL);
    unsetenv("VINE_LOCAL_CORES");
    /* VINE_PROGRESS is 1 or 0 (or yes/no, on/off, true/false): anything else too. */
    const char *bad_progress[] = {"abc", "2", "-1", ""};
    for (size_t i = 0; i < sizeof bad_progress / sizeof *bad_progress; i++) {
        setenv("VINE_PROGRESS", bad_progress[i], 1);
        CHECK(vine_create(VINE_PORT_NONE) == NULL);
        CHECK(strstr(vine_last_error(), "VINE_PROGRESS") != NULL);
        CHECK(strstr(vine_last_error(), "yes") != NULL); /* names every word it takes */
    }
    setenv("VINE_PROGRESS", "0", 1);
    m = vine_create(VINE_PORT_NONE);
    CHECK(m != NULL);
    vine_delete(m);
    unsetenv("VINE_PROGRESS");
    unsetenv("VINE_LOCAL_MEMORY");
    unsetenv("VINE_LOCAL_GPUS");
}

static void test_tls_and_password(void)
{
    /* A manager that makes its own certificate gives its fingerprint. */
    struct vine_manager *m = vine_ssl_create_self_signed(0);
    CHECK(m != NULL);
    const char *fp = vine_ssl_fingerprint(m);
    CHECK(fp && strlen(fp) == 64 && strspn(fp, "0123456789abcdef") == 64);
    vine_delete(m);
    /* Half an identity, or none where there is no socket, is refused. */
    CHECK(vine_ssl_create(0, "key.pem", NULL) == NULL);
    CHECK(strstr(vine_last_error(), "both") != NULL);
    CHECK(vine_ssl_create(0, "/nonexistent/key.pem", "/nonexistent/cert.pem") == NULL);
    /* Empty names are not files: said so, not "No such file" about nothing. */
    CHECK(vine_ssl_create(0, "", "") == NULL);
    CHECK(strstr(vine_last_error(), "the key file cannot be empty") != NULL);
    CHECK(vine_ssl_create_self_signed(VINE_PORT_NONE) == NULL);
    /* Without a key and a certificate, as in TaskVine: no TLS, so no fingerprint. */
    m = vine_ssl_create(VINE_PORT_NONE, NULL, NULL);
    CHECK(m != NULL);
    CHECK(vine_ssl_fingerprint(m) == NULL && vine_last_error()[0] != 0);
    CHECK(vine_ssl_fingerprint(NULL) == NULL);
    vine_delete(m);
    /* A password given as a string; an empty one is refused. */
    m = vine_create(0);
    CHECK_ERR(vine_set_password(m, ""), VINE_ERROR_INVALID_ARGUMENT);
    CHECK_ERR(vine_set_password(m, NULL), VINE_ERROR_NULL);
    CHECK_ERR(vine_set_password(NULL, "x"), VINE_ERROR_NULL);
    CHECK(vine_set_password(m, "sesame") == 0);
    vine_delete(m);
    /* An unreadable VINE_PASSWORD_FILE fails vine_create. */
    setenv("VINE_PASSWORD_FILE", "/nonexistent/password", 1);
    CHECK(vine_create(0) == NULL);
    CHECK(strstr(vine_last_error(), "/nonexistent/password") != NULL);
    unsetenv("VINE_PASSWORD_FILE");
}

/* A factory through the C API: the four lines a program adds, its errors, and
 * its end with vine_factory_delete or with its manager. */
static void test_factory(void)
{
    char worker[4096];
    CHECK(realpath("../../target/release/vine_worker", worker) != NULL);
    CHECK(vine_factory_create(NULL, "local") == NULL);
    struct vine_manager *none = vine_create(VINE_PORT_NONE);
    CHECK(vine_factory_create(none, "local") == NULL && strstr(vine_last_error(), "port"));
    vine_delete(none);

    struct vine_manager *m = vine_create(0);
    CHECK(vine_tune(m, "local-cores", 0) == 0);
    CHECK(vine_factory_create(m, NULL) == NULL);
    CHECK(vine_factory_create(m, "pbs") == NULL && strstr(vine_last_error(), "'pbs'"));

    struct vine_factory *f = vine_factory_create(m, "local");
    CHECK(f != NULL);
    CHECK(vine_factory_set(f, "max-workers", 2) == 0);
    CHECK(vine_factory_set_string(f, "worker-path", worker) == 0);
    CHECK_ERR(vine_factory_set(f, "max-workers", NAN), VINE_ERROR_INVALID_ARGUMENT);
    CHECK_ERR(vine_factory_set(f, "cores", 1e300), VINE_ERROR_INVALID_ARGUMENT);
    CHECK_ERR(vine_factory_set(NULL, "max-workers", 1), VINE_ERROR_NULL);
    CHECK_ERR(vine_factory_set(f, NULL, 1), VINE_ERROR_NULL);
    CHECK_ERR(vine_factory_set(f, "no-such-setting", 1), VINE_ERROR_UNKNOWN_SETTING);
    CHECK_ERR(vine_factory_set_string(f, "worker-options", NULL), VINE_ERROR_NULL);
    CHECK_ERR(vine_factory_set_string(NULL, "worker-options", ""), VINE_ERROR_NULL);
    CHECK_ERR(vine_factory_set_string(f, "submit-command", "true"), VINE_ERROR_INVALID_ARGUMENT);
    for (int i = 0; i < 4; i++)
        CHECK(vine_submit(m, vine_task_create("echo from-a-worker")) > 0);
    for (int i = 0; i < 4; i++) {
        struct vine_task *t = vine_wait(m, LONG);
        CHECK(t != NULL);
        if (!t)
            break;
        CHECK(vine_task_get_result(t) == VINE_RESULT_SUCCESS);
        CHECK(strcmp(vine_task_get_stdout(t), "from-a-worker\n") == 0);
        vine_task_delete(t);
    }
    vine_factory_delete(f);
    /* Deleted: an error, not a crash. */
    CHECK_ERR(vine_factory_set(f, "max-workers", 1), VINE_ERROR_INVALID_HANDLE);
    vine_factory_delete(f);
    CHECK(strstr(vine_last_error(), "not a live factory") != NULL);
    vine_factory_delete(NULL);

    /* A factory ends with its manager. */
    f = vine_factory_create(m, "local");
    CHECK(f != NULL);
    CHECK(vine_factory_set_string(f, "worker-path", worker) == 0);
    CHECK(vine_factory_set(f, "min-workers", 1) == 0);
    vine_delete(m);
    CHECK_ERR(vine_factory_set(f, "max-workers", 1), VINE_ERROR_INVALID_HANDLE);
}

/* The whole of a small file, NUL-terminated (static buffer). */
static const char *slurp(const char *path)
{
    static char buf[1 << 16];
    FILE *f = fopen(path, "r");
    if (!f)
        return "";
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    return buf;
}

static void test_logs(void)
{
    CHECK(vine_enable_transactions_log(NULL, "/tmp/x") == 0 && strstr(vine_last_error(), "NULL"));
    CHECK(vine_enable_perf_log(NULL, "/tmp/x") == 0);
    CHECK(vine_enable_debug_log(NULL) == 0);
    CHECK(vine_get_runtime_directory(NULL) == NULL);
    CHECK(vine_get_path_log(NULL, "x") == NULL);
    vine_log_txn_app(NULL, "x");
    vine_log_debug_app(NULL, "x");
    struct vine_manager *plain = vine_create(VINE_PORT_NONE);
    CHECK(vine_get_runtime_directory(plain) == NULL);
    CHECK(vine_get_path_log(plain, "transactions") == NULL);
    CHECK(vine_get_path_staging(plain, "x") == NULL && vine_get_path_library_log(plain, NULL) == NULL);
    CHECK(vine_get_path_cache(plain, "x") == NULL);
    CHECK(vine_enable_transactions_log(plain, NULL) == 0);
    CHECK(vine_enable_transactions_log(plain, "") == 0);
    CHECK(vine_enable_transactions_log(plain, "/proc/no/such/dir/txn") == 0 && strstr(vine_last_error(), "/proc/no"));
    vine_log_txn_app(plain, NULL);

    char dir[] = "/tmp/vine-capi-logs-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[4096];
    /* A parent that is a file is named as not a directory, by every log. */
    snprintf(path, sizeof path, "%s/plain-file", dir);
    FILE *pf = fopen(path, "w");
    CHECK(pf != NULL);
    if (pf) fclose(pf);
    snprintf(path, sizeof path, "%s/plain-file/log", dir);
    CHECK(vine_enable_transactions_log(plain, path) == 0 && strstr(vine_last_error(), "Not a directory"));
    CHECK(vine_enable_perf_log(plain, path) == 0 && strstr(vine_last_error(), "Not a directory"));
    CHECK(vine_enable_taskgraph_log(plain, path) == 0 && strstr(vine_last_error(), "Not a directory"));
    CHECK(vine_enable_debug_log(path) == 0 && strstr(vine_last_error(), "Not a directory"));
    snprintf(path, sizeof path, "%s/plain-file", dir);
    unlink(path);
    vine_delete(plain);
    /* A missing directory is made, by every log. */
    snprintf(path, sizeof path, "%s/made/for/debug", dir);
    CHECK(vine_enable_debug_log(path) == 1 && access(path, F_OK) == 0);
    snprintf(path, sizeof path, "%s/all-debug", dir);
    CHECK(vine_enable_debug_log(path) == 1);
    CHECK(vine_set_runtime_info_path(dir) == 0);
    struct vine_manager *m = vine_create(VINE_PORT_NONE);
    CHECK(m != NULL);
    const char *run = vine_get_runtime_directory(m);
    CHECK(run != NULL && strncmp(run, dir, strlen(dir)) == 0);
    char *txn = vine_get_path_log(m, "transactions");
    CHECK(txn != NULL && strstr(txn, "/vine-logs/transactions") != NULL);
    /* TaskVine's other paths of the run, their directories made when asked;
       the path is appended as given, even an absolute one. */
    char expect[8192], *p;
    snprintf(expect, sizeof expect, "%s/vine-logs//etc/passwd", run ? run : "");
    CHECK((p = vine_get_path_log(m, "/etc/passwd")) && strcmp(p, expect) == 0);
    free(p);
    snprintf(expect, sizeof expect, "%s/staging/in.dat", run ? run : "");
    CHECK((p = vine_get_path_staging(m, "in.dat")) && strcmp(p, expect) == 0);
    free(p);
    struct stat st;
    snprintf(expect, sizeof expect, "%s/library-logs", run ? run : "");
    CHECK((p = vine_get_path_library_log(m, NULL)) && strcmp(p, expect) == 0 && stat(p, &st) == 0 &&
          S_ISDIR(st.st_mode));
    free(p);
    CHECK(vine_get_path_staging(NULL, "x") == NULL && vine_last_error_code() == VINE_ERROR_NULL);
    /* The cache outlives the run: beside the run directories, as TaskVine's. */
    snprintf(expect, sizeof expect, "%s/vine-cache", dir);
    CHECK((p = vine_get_path_cache(m, NULL)) && strcmp(p, expect) == 0 && stat(p, &st) == 0 &&
          S_ISDIR(st.st_mode));
    free(p);
    snprintf(expect, sizeof expect, "%s/vine-cache/f.dat", dir);
    CHECK((p = vine_get_path_cache(m, "f.dat")) && strcmp(p, expect) == 0);
    free(p);
    CHECK(vine_get_path_cache(NULL, "x") == NULL && vine_last_error_code() == VINE_ERROR_NULL);
    /* The process's debug log is no manager's other log: both would write
       (and truncate) one file. */
    CHECK(vine_enable_perf_log(m, path) == 0 && strstr(vine_last_error(), "debug log"));
    CHECK(vine_enable_transactions_log(m, path) == 0 && strstr(vine_last_error(), "debug log"));
    /* Nor is a manager's log taken for the process's debug log. */
    CHECK(txn != NULL && vine_enable_debug_log(txn) == 0 && strstr(vine_last_error(), "log of a manager"));
    CHECK(vine_submit(m, vine_task_create("true")) == 1);
    struct vine_task *t = vine_wait(m, LONG);
    CHECK(t != NULL);
    vine_task_delete(t);
    vine_log_txn_app(m, "hello\nworld app");
    vine_log_debug_app(m, "from the harness");
    vine_delete(m);
    if (txn) {
        const char *log = slurp(txn);
        CHECK(strstr(log, " APPLICATION hello world app\n") != NULL);
        CHECK(strstr(log, " TASK 1 DONE SUCCESS 0\n") != NULL);
        CHECK(strstr(log, " MANAGER ") != NULL);
    }
    CHECK(strstr(slurp(path), "vine: APPLICATION from the harness\n") != NULL);
    /* Its manager deleted, the file is free for the debug log. */
    CHECK(txn != NULL && vine_enable_debug_log(txn) == 1);
    free(txn);

    /* A template names the next run directories. */
    vine_set_runtime_info_template("fixed-%Y");
    m = vine_create(VINE_PORT_NONE);
    run = vine_get_runtime_directory(m);
    CHECK(run != NULL && strstr(run, "/fixed-20") != NULL);
    vine_delete(m);
    vine_set_runtime_info_template(NULL);

    /* Logs whose reader went away (FIFOs read by a program that exited): the
       writes fail and the program goes on; no SIGPIPE ends it. */
    char fifo_txn[4200], fifo_debug[4200];
    snprintf(fifo_txn, sizeof fifo_txn, "%s/txn.fifo", dir);
    snprintf(fifo_debug, sizeof fifo_debug, "%s/debug.fifo", dir);
    CHECK(mkfifo(fifo_txn, 0600) == 0 && mkfifo(fifo_debug, 0600) == 0);
    /* Readers first, so that opening them for writing does not wait. */
    int read_txn = open(fifo_txn, O_RDONLY | O_NONBLOCK);
    int read_debug = open(fifo_debug, O_RDONLY | O_NONBLOCK);
    CHECK(read_txn >= 0 && read_debug >= 0);
    m = vine_create(VINE_PORT_NONE);
    CHECK(vine_enable_transactions_log(m, fifo_txn) == 1);
    CHECK(vine_enable_debug_log(fifo_debug) == 1);
    close(read_txn);
    close(read_debug);
    for (int i = 0; i < 3; i++) {
        vine_log_debug_app(m, "a line nobody reads");
        vine_log_txn_app(m, "a record nobody reads");
        t = vine_task_create("true");
        CHECK(vine_submit(m, t) > 0 && vine_wait(m, LONG) == t);
        CHECK(vine_task_get_result(t) == VINE_RESULT_SUCCESS);
        vine_task_delete(t);
    }
    vine_delete(m); /* writes the rest of the transactions log */
    snprintf(path, sizeof path, "%s/debug-after-fifo", dir);
    CHECK(vine_enable_debug_log(path) == 1);

    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
}

static void test_resources(void)
{
    CHECK(vine_task_get_resources(NULL, "measured") == NULL);
    CHECK(vine_enable_monitoring(NULL, 1, 0) < 0);
    CHECK(vine_set_category_resources_max(NULL, "a", NULL) < 0);
    CHECK(vine_get_stats_category(NULL, "a", NULL) < 0);
    vine_resources_delete(NULL);
    struct vine_resources *r = vine_resources_create(-1);
    CHECK(r != NULL && r->cores == -1 && r->category == NULL && r->snapshots_count == 0);
    CHECK(vine_resources_set(r, "memory", 150) == 1 && vine_resources_get(r, "memory") == 150);
    CHECK(vine_resources_set(r, "nothing", 1) == 0);
    CHECK(vine_resources_get(r, NULL) == -1);
    r->disk = NAN;
    struct vine_manager *m = manager(2);
    CHECK_ERR(vine_set_category_resources_max(m, "a", r), VINE_ERROR_INVALID_ARGUMENT);
    r->disk = -1;
    /* Gpus are whole, as a task's are: a maximum of 1.5 gpus would give
       tasks 2. */
    r->gpus = 1.5;
    CHECK_ERR(vine_set_category_resources_max(m, "a", r), VINE_ERROR_INVALID_ARGUMENT);
    CHECK(strstr(vine_last_error(), "gpus must be a whole number") != NULL);
    CHECK_ERR(vine_set_category_resources_min(m, "a", r), VINE_ERROR_INVALID_ARGUMENT);
    r->gpus = -1;
    CHECK(vine_set_category_resources_max(m, "a", r) == 0);
    CHECK(vine_set_category_mode(m, "b", VINE_ALLOCATION_MODE_MIN_WASTE) == 1);
    CHECK(vine_set_category_mode(m, "b", 99) == 0);
    CHECK(vine_set_category_max_concurrent(m, "b", 1) == 0);
    CHECK(vine_enable_monitoring(m, 1, 0) == 1);

    struct vine_task *t = vine_task_create("dd if=/dev/zero of=/dev/null bs=50M count=1 2>/dev/null");
    CHECK(vine_task_set_category(t, "a") == 0);
    /* Before a run, as in TaskVine: a summary, every field -1. */
    const struct vine_resources *none = vine_task_get_resources(t, "measured");
    CHECK(none != NULL && none->memory == -1 && none->wall_time == -1);
    CHECK(vine_task_get_resources(t, "nonsense") == NULL);
    const struct vine_resources *q = vine_task_get_resources(t, "requested");
    CHECK(q != NULL && q->memory == -1 && q->cores == -1);
    CHECK(vine_submit(m, t) > 0);
    CHECK(vine_task_get_resources(t, "requested") == NULL);
    CHECK(vine_wait(m, LONG) == t);
    CHECK(vine_task_get_result(t) == VINE_RESULT_SUCCESS);
    const struct vine_resources *got = vine_task_get_resources(t, "measured");
    /* (Under a sanitizer this process is larger than the task, whose quick peak
       is then known only from samples: not checked here.) */
    CHECK(got != NULL && got->memory >= 0 && got->wall_time > 0);
    const struct vine_resources *a = vine_task_get_resources(t, "allocated");
    CHECK(a != NULL && a->memory == 150 && a->cores == 1);
    CHECK(vine_task_get_metric(t, "memory_measured") >= 0);
    vine_task_delete(t);

    /* A summary written where the task was told to write it. */
    char sdir[] = "/tmp/vine-capi-summary-XXXXXX";
    CHECK(mkdtemp(sdir) != NULL);
    t = vine_task_create("true");
    CHECK(vine_task_set_monitor_output(t, sdir) == 1);
    CHECK(vine_task_set_monitor_output(t, NULL) == 0 && vine_last_error_code() == VINE_ERROR_NULL);
    CHECK(vine_task_set_monitor_output(t, "") == 0 && vine_last_error_code() == VINE_ERROR_INVALID_ARGUMENT);
    CHECK(vine_task_set_monitor_output(NULL, sdir) == 0);
    CHECK_ERR(vine_initialize_categories(m, NULL, "/no/such/summaries"), VINE_ERROR_IO);
    CHECK_ERR(vine_initialize_categories(m, NULL, NULL), VINE_ERROR_NULL);
    CHECK_ERR(vine_initialize_categories(NULL, NULL, "x"), VINE_ERROR_NULL);
    CHECK_ERR(vine_enable_proportional_resources(NULL), VINE_ERROR_NULL);
    CHECK_ERR(vine_disable_proportional_resources(NULL), VINE_ERROR_NULL);
    int sid = vine_submit(m, t);
    CHECK(sid > 0);
    CHECK(vine_task_set_monitor_output(t, sdir) == 0 && vine_last_error_code() == VINE_ERROR_TASK_SUBMITTED);
    CHECK(vine_wait(m, LONG) == t);
    char spath[256];
    snprintf(spath, sizeof spath, "%s/vine-task-%d.summary", sdir, sid);
    FILE *sf = fopen(spath, "r");
    CHECK(sf != NULL);
    if (sf) {
        char text[4096] = "";
        size_t got_len = fread(text, 1, sizeof text - 1, sf);
        fclose(sf);
        CHECK(got_len > 0 && strstr(text, "\"wall_time\":[") != NULL);
    }
    /* The summary just written seeds a category of another manager. */
    struct vine_manager *seeded = manager(1);
    CHECK(vine_initialize_categories(seeded, r, spath) == 0);
    vine_delete(seeded);
    unlink(spath);
    CHECK(rmdir(sdir) == 0);
    vine_task_delete(t);

    for (int i = 0; i < 3; i++) {
        t = vine_task_create("true");
        vine_task_set_category(t, "b");
        CHECK(vine_submit(m, t) > 0);
    }
    for (int i = 0; i < 3; i++) {
        t = vine_wait(m, LONG);
        CHECK(t != NULL && vine_task_get_result(t) == VINE_RESULT_SUCCESS);
        vine_task_delete(t);
    }
    /* An automatic mode sizes what it is told to: the whole pool's cores for
       "c", vine's default of one core for "d", whose cores it does not size. */
    const char *sized[] = {"c", "d"};
    CHECK(vine_enable_category_resource(m, "d", "cores", 0) == 1);
    for (int i = 0; i < 2; i++) {
        CHECK(vine_set_category_mode(m, sized[i], VINE_ALLOCATION_MODE_MAX) == 1);
        t = vine_task_create("true");
        vine_task_set_category(t, sized[i]);
        CHECK(vine_submit(m, t) > 0);
        CHECK(vine_wait(m, LONG) == t);
        a = vine_task_get_resources(t, "allocated");
        CHECK(a != NULL && a->cores == 2 - i);
        vine_task_delete(t);
    }
    struct vine_stats s;
    CHECK(vine_get_stats_category(m, "b", &s) == 0);
    CHECK(s.tasks_submitted == 3 && s.tasks_done == 3 && s.tasks_running == 0);
    CHECK(vine_get_stats_category(m, "a", &s) == 0 && s.tasks_successful == 1);
    vine_delete(m);
    vine_resources_delete(r);
}

int main(void)
{
    CHECK(vine_register_function("echo", echo) == 0);
    CHECK(vine_register_function("checksum", checksum) == 0);
    CHECK(vine_register_function("fails_with_7", fails_with_7) == 0);
    CHECK(vine_register_function("gated", gated) == 0);

    test_null_and_bad_arguments();
    test_ownership_and_lifecycle();
    test_submitted_task_fields();
    test_create_sets_errno();
    test_function_results();
    test_many_threads();
    test_declaring_while_the_manager_is_deleted();
    test_commands_and_files();
    test_files_from_elsewhere();
    test_cancel_and_shutdown();
    test_what_tasks_report();
    test_gpus();
    test_environment();
    test_tls_and_password();
    test_factory();
    test_manager_calls_from_a_process_function();
    test_fork_after_create();
    test_process_exit_writes_no_stdio_twice();
    test_process_closing_every_descriptor();
    test_copies_too_large_for_memory();
    test_resources();
    test_sigchld_ignored();
    test_input_alignment();
    test_logs(); /* last: it sets where every later manager writes its logs */

    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
