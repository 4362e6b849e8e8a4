// oneTBB task_group in an arena of 2 threads: the workloads of vine.c but mixed
// (no resource requests). threads8: 8 threads each run a task_group in the arena.
#include "common.h"

#include <atomic>
#include <thread>
#include <vector>

#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/task_arena.h>
#include <oneapi/tbb/task_group.h>

static std::atomic<long> done{0};

int main(int argc, char **argv)
{
    if (argc != 3) return 2;
    long n = atol(argv[2]);
    std::string w = argv[1];
    double us = w == "spin100" ? 100 : w == "spin1000" ? 1000 : 0;
    if (!(us > 0 || w == "empty" || w == "roundtrip" || w == "threads8")) return 2;
    oneapi::tbb::global_control limit(oneapi::tbb::global_control::max_allowed_parallelism, 2);
    oneapi::tbb::task_arena arena(2);
    double t0 = now();
    if (w == "threads8") {
        std::vector<std::thread> th;
        for (int k = 0; k < 8; k++)
            th.emplace_back([&] {
                arena.execute([&] {
                    oneapi::tbb::task_group g;
                    for (long i = 0; i < n / 8; i++) g.run([] { done++; });
                    g.wait();
                });
            });
        for (auto &t : th) t.join();
        n = n / 8 * 8;
    } else {
        arena.execute([&] {
            oneapi::tbb::task_group g;
            for (long i = 0; i < n; i++) {
                g.run([us] {
                    if (us > 0) spin(us);
                    done++;
                });
                if (w == "roundtrip") g.wait();
            }
            g.wait();
        });
    }
    double t = now() - t0;
    if (done != n) {
        fprintf(stderr, "tbb: %ld of %ld tasks ran\n", done.load(), n);
        return 1;
    }
    if (us > 0) report("tbb", w.c_str(), n * us * 1e-6 / 2 / t);
    else if (w == "roundtrip") report("tbb", w.c_str(), t / n * 1e6);
    else report("tbb", w.c_str(), n / t);
    return 0;
}
