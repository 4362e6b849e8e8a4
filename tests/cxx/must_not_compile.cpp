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
#else
    out.append(in);
#endif
    return 0;
}

int main()
{
    vine::register_function<f>("f");
    std::string text = "hello";
#if CASE == 3
    auto t = vine::task::function("f", text.c_str()); // the address as input
#elif CASE == 4
    auto &t = vine::task::command("true").tag("x"); // a reference to a task deleted at the ;
#else
    auto t = vine::task::function("f", std::string_view(text)).tag("x");
#endif
    return t.id();
}
