/* Built against an installed vine: runs one function task and one command. */
#include <vine.h>
#include <stdio.h>
#include <string.h>

static int twice(const void *in, size_t len, struct vine_buffer *out, void *ctx)
{
    (void)ctx;
    int x;
    if (len != sizeof x) return 1;
    memcpy(&x, in, sizeof x);
    x *= 2;
    return vine_buffer_append(out, &x, sizeof x);
}

int main(void)
{
    vine_register_function("twice", twice);
    struct vine_manager *m = vine_create(VINE_PORT_NONE);
    if (!m) return 1;
    int x = 21;
    vine_submit(m, vine_task_create_function("twice", &x, sizeof x));
    vine_submit(m, vine_task_create("echo installed"));
    int ok = 0;
    struct vine_task *t;
    while ((t = vine_wait(m, 60))) {
        size_t n;
        const int *y = vine_task_get_output(t, &n);
        if (y && n == sizeof x && *y == 42) ok++;
        if (vine_task_get_stdout(t) && !strcmp(vine_task_get_stdout(t), "installed\n")) ok++;
        vine_task_delete(t);
    }
    vine_delete(m);
    printf("vine %s: %s\n", vine_version(), ok == 2 ? "ok" : "WRONG");
    return ok == 2 ? 0 : 1;
}
