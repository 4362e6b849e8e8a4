// vine.hpp read after taskvine.h, which renames a few vine_ functions to
// TaskVine-style wrappers: the C++ methods still call vine's own functions
// (errors throw with vine's codes), and after vine.hpp the TaskVine names are
// back for the C code of this file. Linked with test.cpp, which includes
// vine.hpp alone: both see one definition of each inline method.
#include "taskvine.h"
#include "vine.hpp"

int taskvine_first_failures();

int taskvine_first_failures()
{
    int failures = 0;
    vine::manager m;
    auto code_of = [](auto &&call) {
        try {
            call();
        } catch (const vine::error &e) {
            return e.code();
        }
        return 0;
    };
    if (code_of([&] { m.cancel(9999); }) != VINE_ERROR_UNKNOWN_TASK) failures++;
    if (code_of([&] { m.tune("no-such-setting", 1); }) != VINE_ERROR_UNKNOWN_SETTING) failures++;
    vine::file f = m.declare_buffer(std::string("x"));
    vine::task t = vine::task::command("true");
    if (code_of([&] { t.input(f, "../escape"); }) != VINE_ERROR_INVALID_ARGUMENT) failures++;
    t.input(f, "in");
    if (code_of([&] { t.input(f, "in"); }) >= 0) failures++;
    // The TaskVine names are TaskVine's again here: 0 for an unknown setting
    // would be -1, and an input added is 1.
    if (vine_tune(m.get(), "no-such-setting", 1) != -1) failures++;
    if (vine_task_add_input(t.get(), f.get(), "other", 0) != 1) failures++;
    return failures;
}
