/*
 * A command pipeline with files. Stage 1: three commands each generate a data file
 * (kept as a temp, where it was made). Stage 2: each is filtered with a threshold
 * passed as a buffer, producing a file on disk. Stage 3: one command combines the
 * filtered files into a summary read back as a buffer. The answer is checked.
 */
#define _GNU_SOURCE
#include "vine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PARTS 3

static struct vine_task *run(struct vine_manager *m, struct vine_task *t)
{
    int id = vine_submit(m, t);
    if (!id) {
        fprintf(stderr, "submit: %s\n", vine_last_error());
        exit(1);
    }
    return vine_wait_for_task_id(m, id, VINE_WAIT_FOREVER);
}

static void expect_success(struct vine_task *t)
{
    if (!t || vine_task_get_result(t) != VINE_RESULT_SUCCESS || vine_task_get_exit_code(t) != 0) {
        fprintf(stderr, "task failed: %s (%s)\n", t ? vine_result_string(vine_task_get_result(t)) : "lost",
                t && vine_task_get_reason(t) ? vine_task_get_reason(t) : "exit code");
        exit(1);
    }
}

int main(void)
{
    char dir[] = "/tmp/vine-pipeline-XXXXXX";
    if (!mkdtemp(dir)) return 1;
    struct vine_manager *m = vine_create(VINE_PORT_NONE);
    if (!m) {
        fprintf(stderr, "vine_create: %s\n", vine_last_error());
        return 1;
    }

    /* Stage 1: generate part i = the numbers i*100+1 .. i*100+100, into temps. */
    struct vine_file *raw[PARTS];
    int ids[PARTS];
    for (int i = 0; i < PARTS; i++) {
        raw[i] = vine_declare_temp(m);
        char cmd[128];
        snprintf(cmd, sizeof cmd, "seq %d %d > numbers.txt", i * 100 + 1, i * 100 + 100);
        struct vine_task *t = vine_task_create(cmd);
        vine_task_add_output(t, raw[i], "numbers.txt", 0);
        ids[i] = vine_submit(m, t);
    }
    for (int i = 0; i < PARTS; i++) {
        struct vine_task *t = vine_wait_for_task_id(m, ids[i], VINE_WAIT_FOREVER);
        expect_success(t);
        vine_task_delete(t);
    }

    /* Stage 2: keep the multiples of the threshold (a buffer), into files on disk. */
    struct vine_file *threshold = vine_declare_buffer(m, "7\n", 2, VINE_CACHE_LEVEL_WORKFLOW, 0);
    struct vine_file *filtered[PARTS];
    for (int i = 0; i < PARTS; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/filtered-%d.txt", dir, i);
        filtered[i] = vine_declare_file(m, path, VINE_CACHE_LEVEL_TASK, VINE_UNLINK_WHEN_DONE);
        struct vine_task *t = vine_task_create("k=$(cat params/k); awk -v k=$k '$1 % k == 0' in/numbers.txt > out.txt; "
                                               "wc -l < out.txt");
        vine_task_add_input(t, raw[i], "in/numbers.txt", 0);
        vine_task_add_input(t, threshold, "params/k", 0);
        vine_task_add_output(t, filtered[i], "out.txt", 0);
        t = run(m, t);
        expect_success(t);
        printf("part %d: %s multiples of 7\n", i, strtok((char *)vine_task_get_stdout(t), "\n"));
        vine_task_delete(t);
    }

    /* Stage 3: combine into a summary buffer: count and sum. */
    struct vine_file *summary = vine_declare_buffer(m, NULL, 0, VINE_CACHE_LEVEL_TASK, 0);
    struct vine_task *t = vine_task_create("cat p0 p1 p2 | awk '{ n++; s += $1 } END { print n, s }' > summary");
    for (int i = 0; i < PARTS; i++) {
        char name[8];
        snprintf(name, sizeof name, "p%d", i);
        vine_task_add_input(t, filtered[i], name, 0);
    }
    vine_task_add_output(t, summary, "summary", 0);
    t = run(m, t);
    expect_success(t);
    vine_task_delete(t);

    const char *text = vine_fetch_file(m, summary);
    long n = 0, sum = 0;
    if (!text || sscanf(text, "%ld %ld", &n, &sum) != 2) return 1;
    /* Multiples of 7 in 1..300: 7, 14, ..., 294: 42 of them, summing to 7*42*43/2. */
    printf("summary: %ld numbers, sum %ld\n", n, sum);
    vine_delete(m); /* also removes the filtered files (VINE_UNLINK_WHEN_DONE) */
    rmdir(dir);
    return (n == 42 && sum == 7 * 42 * 43 / 2) ? 0 : 1;
}
