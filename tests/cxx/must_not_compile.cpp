// Each CASE is a misuse vine.hpp refuses at compile time; the Makefile checks
// that every one fails to compile (and that CASE 0, the correct forms, does).
#include "vine.hpp"

static int f(vine::bytes in, vine::output &out)
{
#if CASE == 1
    const char *p = "text";
    out.append(p); // would append the address
#elif CASE == 2
    out.append(&in); // likewise
#elif CASE == 8
    out.append(nullptr); // eight zero bytes
#else
    out.append(in);
    out.append(std::string("s"));
    out.append("literal");
#endif
    return 0;
}

int main()
{
    vine::register_function<f>("f");
    std::string text = "hello";
    const char *words[2] = {"a", "b"};
    std::vector<const char *> list{"a", "b"};
#if CASE == 3
    auto t = vine::task::function("f", text.c_str()); // the address as input
#elif CASE == 4
    auto &t = vine::task::command("true").tag("x"); // a reference to a task deleted at the ;
#elif CASE == 5
    auto t = vine::task::function("f", nullptr); // eight zero bytes
#elif CASE == 6
    auto t = vine::task::function("f", words); // the addresses
#elif CASE == 7
    auto t = vine::task::function("f", list); // likewise
#else
    (void)words;
    (void)list;
    auto t = vine::task::function("f", std::string_view(text)).tag("x");
    auto u = vine::task::function("f", text); // a std::string's characters
    auto v = vine::task::function("f", "text"); // a literal's, without its NUL
    (void)u;
    (void)v;
#endif
    return t.id();
}
