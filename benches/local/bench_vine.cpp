// The throughput and round-trip measures of bench_vine.c, written against the C++
// wrapper (vine.hpp): what the wrapper costs over the C calls it forwards to.
//   bench_vine_cpp throughput N  : N empty function tasks submitted, then all waited
//   bench_vine_cpp roundtrip N   : submit one task and wait for it, N times
// Every task is checked; a broken run fails instead of printing a number.
#include "vine.hpp"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace {

int empty(vine::bytes, vine::output &) { return 0; }

double now()
{
    using namespace std::chrono;
    return duration<double>(steady_clock::now().time_since_epoch()).count();
}

[[noreturn]] void fail(const char *what)
{
    std::fprintf(stderr, "bench_vine_cpp: %s\n", what);
    std::exit(1);
}

long drain(vine::manager &m)
{
    long n = 0;
    while (vine::task t = m.wait()) {
        if (!t.ok()) fail("a task failed");
        n++;
    }
    return n;
}

} // namespace

int main(int argc, char **argv)
{
    if (argc != 3) {
        std::fprintf(stderr, "usage: %s throughput|roundtrip N\n", argv[0]);
        return 2;
    }
    long n = std::atol(argv[2]);
    try {
        vine::register_function<empty>("empty");
        vine::manager m;
        m.tune("local-cores", 2);
        char input[16] = "0123456789abcde";
        if (!std::strcmp(argv[1], "throughput")) {
            double t0 = now();
            for (long i = 0; i < n; i++) m.submit(vine::task::function("empty", input, sizeof input));
            if (drain(m) != n) fail("lost tasks");
            std::printf("vine-c++ throughput_tasks_per_s %.0f\n", n / (now() - t0));
        } else if (!std::strcmp(argv[1], "roundtrip")) {
            double t0 = now();
            for (long i = 0; i < n; i++) {
                m.submit(vine::task::function("empty", input, sizeof input));
                vine::task t = m.wait();
                if (!t || !t.ok()) fail("round trip");
            }
            std::printf("vine-c++ roundtrip_ns %.0f\n", (now() - t0) / n * 1e9);
        } else {
            return 2;
        }
    } catch (const vine::error &e) {
        fail(e.what());
    }
    return 0;
}
