/* First steps: register a function, submit tasks, wait for them, print. */
#include "vine.h"

#include <stdio.h>
#include <string.h>

/* A task function: reads its input bytes, appends its result, returns 0 on success. */
static int cube(const void *input, size_t len, struct vine_buffer *output, void *context)
{
    (void)context;
    long x;
    if (len != sizeof x) return 1; /* any non-zero: VINE_RESULT_FUNCTION_ERROR */
    memcpy(&x, input, sizeof x);
    long y = x * x * x;
    return vine_buffer_append(output, &y, sizeof y);
}

int main(void)
{
    /* Every process that may run the task registers the function by name. */
    if (vine_register_function("cube", cube) != 0) {
        fprintf(stderr, "register: %s\n", vine_last_error());
        return 1;
    }
    /* A manager with local worker threads only (one per core, no set-up). */
    struct vine_manager *m = vine_create(VINE_PORT_NONE);
    if (!m) {
        fprintf(stderr, "vine_create: %s\n", vine_last_error());
        return 1;
    }
    for (long x = 1; x <= 5; x++) {
        struct vine_task *t = vine_task_create_function("cube", &x, sizeof x); /* input copied */
        if (!vine_submit(m, t)) { /* from here the manager owns t */
            fprintf(stderr, "submit: %s\n", vine_last_error());
            return 1;
        }
    }
    long total = 0;
    struct vine_task *t;
    while ((t = vine_wait(m, VINE_WAIT_FOREVER))) { /* NULL once nothing is outstanding */
        size_t len;
        const long *y = vine_task_get_output(t, &len);
        if (vine_task_get_result(t) != VINE_RESULT_SUCCESS || len != sizeof *y) {
            fprintf(stderr, "task %d failed: %s\n", vine_task_get_id(t), vine_task_get_reason(t));
            return 1;
        }
        printf("task %d: %ld\n", vine_task_get_id(t), *y);
        total += *y;
        vine_task_delete(t); /* the caller owns what vine_wait returns */
    }
    vine_delete(m);
    printf("sum of cubes 1..5 = %ld\n", total);
    return total == 225 ? 0 : 1;
}
