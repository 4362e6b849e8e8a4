// The C++ wrapper: submit, wait, outputs, errors as exceptions, RAII under
// exceptions, shutdown. Prints "N passed, M failed".
#include "vine.hpp"

#include <cmath>
#include <cstdio>
#include <iostream>
#include <numeric>
#include <string>

static int passed, failed;
#define CHECK(cond)                                                              \
    do {                                                                         \
        if (cond) {                                                              \
            passed++;                                                            \
        } else {                                                                 \
            failed++;                                                            \
            std::fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                        \
    } while (0)

static int sum_doubles(vine::bytes in, vine::output &out)
{
    auto v = in.as_vector<double>();
    out.append(std::accumulate(v.begin(), v.end(), 0.0));
    return 0;
}

static int throws(vine::bytes, vine::output &)
{
    throw std::runtime_error("a C++ exception inside a task");
}

static int refuses(vine::bytes in, vine::output &out)
{
    out.append(in.data(), in.size());
    return 5;
}

static int echo_bytes(vine::bytes in, vine::output &out)
{
    out.append(in); // the bytes, not the view
    return 0;
}

int taskvine_first_failures();

int main()
{
    vine::register_function<echo_bytes>("echo_bytes");
    CHECK(taskvine_first_failures() == 0);
    vine::register_function<sum_doubles>("sum_doubles");
    vine::register_function<throws>("throws");
    vine::register_function<refuses>("refuses");
    vine::register_function<sum_doubles>("sum_doubles"); // the same pair again: fine

    {
        vine::manager m;
        m.tune("local-cores", 2);
        std::vector<int> ids;
        for (int i = 1; i <= 20; i++) {
            std::vector<double> xs(static_cast<size_t>(i), 0.5);
            ids.push_back(m.submit(vine::task::function("sum_doubles", xs).cores(0.5).tag("sum")));
        }
        double total = 0;
        int count = 0;
        while (auto t = m.wait(60)) {
            CHECK(t.ok());
            CHECK(t.tag() == "sum");
            total += t.output_as<double>();
            count++;
        }
        CHECK(count == 20);
        CHECK(std::fabs(total - 105.0) < 1e-9); // 0.5 * (1 + ... + 20)

        // Errors become exceptions carrying the library's message.
        bool threw = false;
        try {
            m.tune("no-such-setting", 1);
        } catch (const vine::error &e) {
            threw = e.code() == VINE_ERROR_UNKNOWN_SETTING && std::string(e.what()).find("unknown setting") != std::string::npos;
        }
        CHECK(threw);
        threw = false;
        try {
            vine::task::command("true").cores(-1);
        } catch (const vine::error &e) {
            threw = e.code() == VINE_ERROR_INVALID_ARGUMENT;
        }
        CHECK(threw);
        // A constructor that fails carries the library's code for why.
        {
            vine::manager listening(0);
            threw = false;
            try {
                vine::manager again(vine_port(listening.get()));
            } catch (const vine::error &e) {
                threw = e.code() == VINE_ERROR_IO && std::string(e.what()).find("in use") != std::string::npos;
            }
            CHECK(threw);
        }

        // An exception inside a task fails the task, not the program.
        int id = m.submit(vine::task::function("throws", nullptr, 0));
        auto t = m.wait_for(id, 60);
        CHECK(t && t.result() == VINE_RESULT_FUNCTION_ERROR && t.exit_code() == -1);
        t = m.wait_for(m.submit(vine::task::function("refuses", 42)), 60);
        CHECK(t.result() == VINE_RESULT_FUNCTION_ERROR && t.exit_code() == 5 && t.output_as<int>() == 42);

        // Commands and files.
        auto in = m.declare_buffer("hello files\n");
        auto out = m.declare_buffer(std::string());
        t = m.wait_for(m.submit(vine::task::command("tr a-z A-Z < in > out; cat out").input(in, "in").output(out, "out")), 60);
        CHECK(t.ok() && t.stdout_text() == "HELLO FILES\n");
        CHECK(m.fetch(out) == "HELLO FILES\n");
        // A pointer and an int length: the bytes, not a string of the pointer
        // (ambiguous under -pedantic-errors before).
        const char abc[] = "abcdef";
        CHECK(m.fetch(m.declare_buffer(abc, 3)) == "abc");
        CHECK(m.fetch(m.declare_buffer(nullptr, 0)).empty());
        // Every byte fetched, NULs included; a string holding a NUL is refused,
        // not cut short.
        CHECK(m.fetch(m.declare_buffer(std::string("a\0b", 3))) == std::string("a\0b", 3));
        threw = false;
        try {
            vine::task::command(std::string("echo hi\0; rm -rf x", 18));
        } catch (const vine::error &e) {
            threw = e.code() == VINE_ERROR_INVALID_ARGUMENT;
        }
        CHECK(threw);
        // A text with a cache level is a std::string: all of it, cached as asked.
        auto kept = m.declare_buffer(std::string("hello world\n"), VINE_CACHE_LEVEL_WORKFLOW);
        CHECK(kept.size() == 12 && m.fetch(kept) == "hello world\n");
        threw = false;
        try {
            m.declare_buffer(abc, -1);
        } catch (const vine::error &e) {
            threw = e.code() == VINE_ERROR_INVALID_ARGUMENT;
        }
        CHECK(threw);

        // A task that is never submitted, and one dropped while an exception
        // unwinds: both freed by their owners (valgrind/ASan would see a leak).
        try {
            auto unused = vine::task::command("true");
            auto also = vine::task::function("sum_doubles", 1.0);
            throw std::runtime_error("unwind");
        } catch (const std::runtime_error &) {
        }
        // Moved-from owners own nothing; moved-to owners free once.
        auto a = vine::task::command("echo moved");
        auto b = std::move(a);
        CHECK(!a && b);
        b = m.wait_for(m.submit(b), 60);
        CHECK(b.stdout_text() == "moved\n");

        // Shutdown with work outstanding: everything comes back once.
        for (int i = 0; i < 50; i++) m.submit(vine::task::command("true"));
        m.shutdown();
        int back = 0;
        while (auto x = m.wait(60)) back++;
        CHECK(back == 50);
        CHECK(m.empty());
        vine_stats s = m.stats();
        CHECK(s.tasks_submitted == 50 + 20 + 4);
        threw = false;
        try {
            m.submit(vine::task::command("true"));
        } catch (const vine::error &) {
            threw = true;
        }
        CHECK(threw);
    }
    {
        // A chain on a temporary gives the task itself, not a reference to a
        // task deleted at the end of the statement.
        vine::manager m;
        auto t = vine::task::function("echo_bytes", std::string_view("view")).tag("kept").cores(1);
        CHECK(t && t.tag() == "kept");
        int id = m.submit(t);
        auto back = m.wait_for(id, 60);
        CHECK(back.ok());
        auto out = back.output();
        CHECK(std::string(reinterpret_cast<const char *>(out.data()), out.size()) == "view");
        int code = 0;
        try {
            vine::task().metric("wall_time");
        } catch (const vine::error &e) {
            code = e.code();
        }
        CHECK(code == VINE_ERROR_NULL);
        code = 0;
        try {
            back.metric(nullptr);
        } catch (const vine::error &e) {
            code = e.code();
        }
        CHECK(code == VINE_ERROR_NULL);
        // A std::string and a literal send their characters, no NUL.
        std::string text("str\0ing", 7);
        int a = m.submit(vine::task::function("echo_bytes", text));
        int b = m.submit(vine::task::function("echo_bytes", "lit"));
        auto ta = m.wait_for(a, 60), tb = m.wait_for(b, 60);
        CHECK(ta.ok() && tb.ok());
        auto oa = ta.output(), ob = tb.output();
        CHECK(std::string(reinterpret_cast<const char *>(oa.data()), oa.size()) == text);
        CHECK(std::string(reinterpret_cast<const char *>(ob.data()), ob.size()) == "lit");
    }
    vine::manager moved_from;
    vine::manager owner = std::move(moved_from);
    CHECK(owner.port() == VINE_PORT_NONE);
    {
        int code = 0;
        try {
            (void)moved_from.port();
        } catch (const vine::error &e) {
            code = e.code();
        }
        CHECK(code == VINE_ERROR_NULL);
    }
    {
        // A wait on the manager moved from is an error, not a timeout.
        int code = 0;
        try {
            moved_from.wait(0);
        } catch (const vine::error &e) {
            code = e.code();
        }
        CHECK(code == VINE_ERROR_NULL);
        code = 0;
        try {
            moved_from.wait_for_tag("t", 0);
        } catch (const vine::error &e) {
            code = e.code();
        }
        CHECK(code == VINE_ERROR_NULL);
    }

    {
        // A wait that fails is an exception, not an empty task that reads as
        // "nothing left": a bad timeout here. Timeouts and nothing outstanding
        // stay empty.
        int code = 0;
        try {
            owner.wait(-5);
        } catch (const vine::error &e) {
            code = e.code();
        }
        CHECK(code == VINE_ERROR_INVALID_ARGUMENT);
        code = 0;
        try {
            owner.wait_for(1, -5);
        } catch (const vine::error &e) {
            code = e.code();
        }
        CHECK(code == VINE_ERROR_INVALID_ARGUMENT);
        CHECK(!owner.wait(0));
        CHECK(!owner.wait_for(12345, 0));
        CHECK(!owner.wait_for_tag("none", 0));
        owner.submit(vine::task::command("sleep 30").tag("slow"));
        CHECK(!owner.wait(0));
        CHECK(!owner.wait_for_tag("slow", 0));
        CHECK(owner.cancel_all() == 1);
        auto t = owner.wait(60);
        CHECK(t && t.result() == VINE_RESULT_CANCELLED);
    }

    std::cout << passed << " passed, " << failed << " failed" << std::endl;
    return failed != 0;
}
