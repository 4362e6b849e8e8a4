// Monte-Carlo estimate of pi in C++: the unit square sampled in slices, one task
// per slice with its own seed, results collected through the RAII wrapper. Checks
// its own answer against the known value within the statistical error.
#include "vine.hpp"

#include <cmath>
#include <cstdint>
#include <iostream>

struct slice {
    std::uint64_t seed;
    std::uint64_t samples;
};

// A small, reproducible generator (splitmix64): the same seed gives the same points.
static double next_unit(std::uint64_t &s)
{
    std::uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return static_cast<double>(z >> 11) * 0x1.0p-53;
}

static int count_inside(vine::bytes input, vine::output &out)
{
    slice sl = input.as<slice>();
    std::uint64_t inside = 0, s = sl.seed;
    for (std::uint64_t i = 0; i < sl.samples; i++) {
        double x = next_unit(s), y = next_unit(s);
        inside += x * x + y * y <= 1.0;
    }
    out.append(inside);
    return 0;
}

int main()
{
    try {
        vine::register_function<count_inside>("count_inside");
        vine::manager m; // local threads only
        const int slices = 64;
        const std::uint64_t per_slice = 200000;
        for (int i = 0; i < slices; i++)
            m.submit(vine::task::function("count_inside", slice{static_cast<std::uint64_t>(i) << 40, per_slice}));
        std::uint64_t inside = 0;
        int done = 0;
        while (auto t = m.wait()) {
            if (!t.ok()) throw std::runtime_error("task " + std::to_string(t.id()) + ": " + t.reason());
            inside += t.output_as<std::uint64_t>();
            done++;
        }
        double n = static_cast<double>(slices) * static_cast<double>(per_slice);
        double pi = 4.0 * static_cast<double>(inside) / n;
        double sigma = 4.0 * std::sqrt(M_PI / 4 * (1 - M_PI / 4) / n);
        std::cout << done << " slices, " << n << " samples: pi ~ " << pi << " (error " << std::fabs(pi - M_PI)
                  << ", 4 sigma = " << 4 * sigma << ")\n";
        return done == slices && std::fabs(pi - M_PI) < 4 * sigma ? 0 : 1;
    } catch (const vine::error &e) {
        std::cerr << "vine: " << e.what() << "\n";
        return 1;
    }
}
