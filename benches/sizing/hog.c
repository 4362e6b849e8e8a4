/* A task of known use: touches MB megabytes (argument 1), burns CPU_MS
 * milliseconds of CPU (argument 2), then holds its memory for HOLD_MS more
 * (argument 3) without using a core. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    if (argc != 4)
        return 2;
    size_t mb = strtoul(argv[1], NULL, 10);
    double cpu = atof(argv[2]) / 1000.0;
    long hold_ms = atol(argv[3]);
    char *p = malloc(mb << 20);
    if (!p)
        return 3;
    memset(p, 1, mb << 20);
    double start = cpu_s();
    while (cpu_s() - start < cpu)
        ;
    struct timespec hold = {hold_ms / 1000, (hold_ms % 1000) * 1000000L};
    nanosleep(&hold, NULL);
    return p[mb << 19] == 1 ? 0 : 4;
}
