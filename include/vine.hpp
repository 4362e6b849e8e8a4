// vine.hpp: a header-only C++17 wrapper over vine.h.
//
// Owners are move-only RAII types: vine::manager deletes its manager, vine::task
// deletes its task (unless the manager owns it), so nothing leaks when an exception
// unwinds and nothing is freed twice. Failures throw vine::error carrying the
// library's message. Every call forwards to the C function it names, inline, so the
// wrapper costs nothing a benchmark could see.
//
//   vine::manager m;                                  // local threads only
//   vine::register_function<square>("square");        // int square(vine::bytes, vine::output&)
//   m.submit(vine::task::function("square", 3.0));
//   while (auto t = m.wait()) std::cout << t.output_as<double>() << "\n";
#ifndef VINE_HPP
#define VINE_HPP

#include "vine.h"

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <string_view>
#include <vector>

// taskvine.h, included before this header, turns a few vine_ names into
// TaskVine-style wrappers with TaskVine's return values; this header calls
// vine's own functions whatever was included before it, and gives the names
// back as they were at its end.
#pragma push_macro("vine_task_add_input")
#undef vine_task_add_input
#pragma push_macro("vine_task_add_output")
#undef vine_task_add_output
#pragma push_macro("vine_set_password_file")
#undef vine_set_password_file
#pragma push_macro("vine_enable_monitoring")
#undef vine_enable_monitoring
#pragma push_macro("vine_cancel_by_task_id")
#undef vine_cancel_by_task_id
#pragma push_macro("vine_tune")
#undef vine_tune
#pragma push_macro("vine_enable_proportional_resources")
#undef vine_enable_proportional_resources
#pragma push_macro("vine_disable_proportional_resources")
#undef vine_disable_proportional_resources

namespace vine {

/// A failed vine call: what() is the library's message, code() its vine_error_t.
class error : public std::runtime_error {
public:
    error(int code, const std::string &what) : std::runtime_error(what), code_(code) {}
    int code() const noexcept { return code_; }

private:
    int code_;
};

namespace detail {
inline std::string last(const char *call)
{
    return std::string(call) + ": " + vine_last_error();
}
/* The code of the call that just failed, as vine_last_error_code() gives it. */
inline int last_code()
{
    int code = vine_last_error_code();
    return code < 0 ? code : VINE_ERROR_INTERNAL;
}
inline int check(int rc, const char *call)
{
    if (rc < 0) throw error(rc, last(call));
    return rc;
}
/// A char array's text: a string literal without its terminating NUL.
template <std::size_t N> std::string_view text(const char (&s)[N])
{
    return std::string_view(s, N > 0 && s[N - 1] == '\0' ? N - 1 : N);
}

template <class T> T *check_ptr(T *p, const char *call)
{
    if (!p) throw error(last_code(), last(call));
    return p;
}
/* The string for C, which would end at a NUL byte inside it: refused instead
   of cut short (a command, path or tag that is not what was given). */
inline const char *cstr(const std::string &s)
{
    if (s.find('\0') != std::string::npos)
        throw error(VINE_ERROR_INVALID_ARGUMENT, "vine: a string argument holds a NUL byte");
    return s.c_str();
}
} // namespace detail

/// A read-only view of bytes (std::span<const std::byte> in C++20).
class bytes {
public:
    bytes() = default;
    bytes(const void *data, std::size_t size) : data_(static_cast<const std::byte *>(data)), size_(size) {}
    const std::byte *data() const noexcept { return data_; }
    std::size_t size() const noexcept { return size_; }
    bool empty() const noexcept { return size_ == 0; }
    const std::byte *begin() const noexcept { return data_; }
    const std::byte *end() const noexcept { return data_ + size_; }
    /// A copy of the bytes.
    std::vector<std::byte> to_vector() const { return {begin(), end()}; }
    /// The bytes as one T (trivially copyable); throws if the size differs.
    template <class T> T as() const
    {
        static_assert(std::is_trivially_copyable_v<T>, "as<T>() copies bytes");
        if (size_ != sizeof(T)) throw error(VINE_ERROR_INVALID_ARGUMENT, "vine::bytes::as: size mismatch");
        T v;
        std::memcpy(&v, data_, sizeof v);
        return v;
    }
    /// The bytes as an array of T (trivially copyable); throws if not a multiple.
    template <class T> std::vector<T> as_vector() const
    {
        static_assert(std::is_trivially_copyable_v<T>, "as_vector<T>() copies bytes");
        if (size_ % sizeof(T) != 0) throw error(VINE_ERROR_INVALID_ARGUMENT, "vine::bytes::as_vector: size mismatch");
        std::vector<T> v(size_ / sizeof(T));
        if (size_) std::memcpy(v.data(), data_, size_);
        return v;
    }

private:
    const std::byte *data_ = nullptr;
    std::size_t size_ = 0;
};

/// Where a task function writes its result; valid during the call only.
class output {
public:
    explicit output(vine_buffer *b) noexcept : b_(b) {}
    void append(const void *data, std::size_t len) { detail::check(vine_buffer_append(b_, data, len), "vine_buffer_append"); }
    template <class T> void append(const T &value)
    {
        static_assert(std::is_trivially_copyable_v<T>, "append(T) copies bytes");
        static_assert(!std::is_pointer_v<std::remove_all_extents_t<T>> && !std::is_null_pointer_v<T>,
                      "append(p) would copy the address: append(p, len) copies what it points to");
        append(&value, sizeof value);
    }
    /// The bytes a view shows (not the view itself).
    void append(bytes b) { append(b.data(), b.size()); }
    /// A string's characters, without a terminating NUL (a string literal's too).
    void append(std::string_view s) { append(s.data(), s.size()); }
    void append(const std::string &s) { append(s.data(), s.size()); }
    template <std::size_t N> void append(const char (&s)[N]) { append(detail::text(s)); }
    template <class T> void append(const std::vector<T> &values)
    {
        static_assert(std::is_trivially_copyable_v<T>, "append(vector<T>) copies bytes");
        static_assert(!std::is_pointer_v<T>, "a vector of pointers would copy the addresses");
        append(values.data(), values.size() * sizeof(T));
    }

private:
    vine_buffer *b_;
};

/// The signature of a C++ task function: return 0 on success.
using function = int (*)(bytes input, output &out);

namespace detail {
// One C entry per C++ function, chosen at compile time: no captures, no heap.
template <function F> int trampoline(const void *in, std::size_t len, vine_buffer *out, void *)
{
    try {
        output o(out);
        return F(bytes(in, len), o);
    } catch (...) {
        return -1; // an exception never crosses into C: the task fails
    }
}
} // namespace detail

/// Registers the C++ function F under `name` (see vine_register_function).
template <function F> void register_function(const std::string &name)
{
    detail::check(vine_register_function(detail::cstr(name), &detail::trampoline<F>), "vine_register_function");
}

/// A file declared to a manager (owned by the manager; copyable handle).
class file {
public:
    explicit file(vine_file *f) : f_(f) {}
    vine_file *get() const noexcept { return f_; }
    std::size_t size() const noexcept { return vine_file_size(f_); }

private:
    vine_file *f_;
};

class manager;

/// A task: move-only; deletes the C task unless a manager owns it. Hand the C
/// task to C code that takes it for good (`vine_declare_mini_task`, say) with
/// `release()`, not `get()`: the wrapper would delete it again.
class task {
public:
    task() = default;
    explicit task(vine_task *t) noexcept : t_(t) {}
    task(task &&o) noexcept : t_(std::exchange(o.t_, nullptr)) {}
    task &operator=(task &&o) noexcept
    {
        if (this != &o) {
            reset();
            t_ = std::exchange(o.t_, nullptr);
        }
        return *this;
    }
    task(const task &) = delete;
    task &operator=(const task &) = delete;
    ~task() { reset(); }

    /// A shell command.
    static task command(const std::string &cmd) { return task(detail::check_ptr(vine_task_create(detail::cstr(cmd)), "vine_task_create")); }
    /// A registered function with raw input bytes.
    static task function(const std::string &name, const void *input, std::size_t len)
    {
        return task(detail::check_ptr(vine_task_create_function(detail::cstr(name), input, len), "vine_task_create_function"));
    }
    /// A registered function with one trivially copyable value as input.
    template <class T> static task function(const std::string &name, const T &value)
    {
        static_assert(std::is_trivially_copyable_v<T>, "the input is copied as bytes");
        static_assert(!std::is_pointer_v<std::remove_all_extents_t<T>> && !std::is_null_pointer_v<T>,
                      "a pointer as input would send the address: function(name, p, len) sends what it points to");
        return function(name, &value, sizeof value);
    }
    /// A registered function with the bytes a view shows as input.
    static task function(const std::string &name, bytes input) { return function(name, input.data(), input.size()); }
    /// A registered function with a string's characters as input, without a
    /// terminating NUL (a string literal's too).
    static task function(const std::string &name, std::string_view input) { return function(name, input.data(), input.size()); }
    static task function(const std::string &name, const std::string &input) { return function(name, input.data(), input.size()); }
    template <std::size_t N> static task function(const std::string &name, const char (&input)[N])
    {
        return function(name, detail::text(input));
    }
    /// A registered function with an array as input.
    template <class T> static task function(const std::string &name, const std::vector<T> &values)
    {
        static_assert(std::is_trivially_copyable_v<T>, "the input is copied as bytes");
        static_assert(!std::is_pointer_v<T>, "a vector of pointers would send the addresses");
        return function(name, values.data(), values.size() * sizeof(T));
    }

    explicit operator bool() const noexcept { return t_ != nullptr; }
    vine_task *get() const noexcept { return t_; }
    /// Gives up ownership (e.g. to pass it to C code).
    vine_task *release() noexcept { return std::exchange(t_, nullptr); }

    // Each setter returns the task it was called on: a reference for a
    // variable (`t.cores(2).tag("x")`), the task itself for a temporary, so
    // that `auto t = vine::task::command("x").tag("y");` holds it rather than
    // a reference to a task already deleted.
    task &cores(double c) & { detail::check(vine_task_set_cores(t_, c), "vine_task_set_cores"); return *this; }
    task cores(double c) && { cores(c); return std::move(*this); }
    task &memory(int64_t mb) & { detail::check(vine_task_set_memory(t_, mb), "vine_task_set_memory"); return *this; }
    task memory(int64_t mb) && { memory(mb); return std::move(*this); }
    task &disk(int64_t mb) & { detail::check(vine_task_set_disk(t_, mb), "vine_task_set_disk"); return *this; }
    task disk(int64_t mb) && { disk(mb); return std::move(*this); }
    task &gpus(int n) & { detail::check(vine_task_set_gpus(t_, n), "vine_task_set_gpus"); return *this; }
    task gpus(int n) && { gpus(n); return std::move(*this); }
    task &priority(double p) & { detail::check(vine_task_set_priority(t_, p), "vine_task_set_priority"); return *this; }
    task priority(double p) && { priority(p); return std::move(*this); }
    task &category(const std::string &c) & { detail::check(vine_task_set_category(t_, detail::cstr(c)), "vine_task_set_category"); return *this; }
    task category(const std::string &c) && { category(c); return std::move(*this); }
    task &tag(const std::string &s) & { detail::check(vine_task_set_tag(t_, detail::cstr(s)), "vine_task_set_tag"); return *this; }
    task tag(const std::string &s) && { tag(s); return std::move(*this); }
    task &time_max(double s) & { detail::check(vine_task_set_time_max(t_, s), "vine_task_set_time_max"); return *this; }
    task time_max(double s) && { time_max(s); return std::move(*this); }
    task &time_min(double s) & { detail::check(vine_task_set_time_min(t_, s), "vine_task_set_time_min"); return *this; }
    task time_min(double s) && { time_min(s); return std::move(*this); }
    task &retries(std::int64_t n) & { detail::check(vine_task_set_retries(t_, n), "vine_task_set_retries"); return *this; }
    task retries(std::int64_t n) && { retries(n); return std::move(*this); }
    task &env(const std::string &k, const std::string &v) & { detail::check(vine_task_set_env_var(t_, detail::cstr(k), detail::cstr(v)), "vine_task_set_env_var"); return *this; }
    task env(const std::string &k, const std::string &v) && { env(k, v); return std::move(*this); }
    task &exec_mode(int mode) & { detail::check(vine_task_set_exec_mode(t_, mode), "vine_task_set_exec_mode"); return *this; }
    task exec_mode(int mode) && { exec_mode(mode); return std::move(*this); }
    task &input(const file &f, const std::string &remote, int flags = 0) & { detail::check(vine_task_add_input(t_, f.get(), detail::cstr(remote), flags), "vine_task_add_input"); return *this; }
    task input(const file &f, const std::string &remote, int flags = 0) && { input(f, remote, flags); return std::move(*this); }
    task &output(const file &f, const std::string &remote, int flags = 0) & { detail::check(vine_task_add_output(t_, f.get(), detail::cstr(remote), flags), "vine_task_add_output"); return *this; }
    task output(const file &f, const std::string &remote, int flags = 0) && { output(f, remote, flags); return std::move(*this); }

    int id() const noexcept { return vine_task_get_id(t_); }
    int result() const noexcept { return vine_task_get_result(t_); }
    bool ok() const noexcept { return result() == VINE_RESULT_SUCCESS; }
    const char *result_string() const noexcept { return vine_result_string(result()); }
    int exit_code() const noexcept { return vine_task_get_exit_code(t_); }
    std::string stdout_text() const { const char *s = vine_task_get_stdout(t_); return s ? s : ""; }
    std::string reason() const { const char *s = vine_task_get_reason(t_); return s ? s : ""; }
    std::string tag() const { const char *s = vine_task_get_tag(t_); return s ? s : ""; }
    std::string category() const { const char *s = vine_task_get_category(t_); return s ? s : ""; }
    /// A measured value (see vine_task_get_metric; -1: not measured). An empty
    /// task or a NULL name throws, where C would give an error code that reads
    /// like a value.
    int64_t metric(const char *name) const
    {
        if (!t_ || !name) throw error(VINE_ERROR_NULL, std::string("vine_task_get_metric: ") + (t_ ? "the name" : "the task") + " is NULL");
        return vine_task_get_metric(t_, name);
    }
    /// The function's output bytes (valid while the task lives).
    bytes output() const
    {
        std::size_t n = 0;
        const void *p = vine_task_get_output(t_, &n);
        return bytes(p, n);
    }
    /// The output as one T.
    template <class T> T output_as() const { return output().as<T>(); }

private:
    void reset() noexcept
    {
        // Deleting fails (harmlessly) only while a manager owns the task.
        if (t_) vine_task_delete(t_);
        t_ = nullptr;
    }
    vine_task *t_ = nullptr;
};

/// A manager: move-only; deleted (shut down first) with its owner.
class manager {
public:
    /// port: VINE_PORT_NONE (local threads only), 0 (any free port) or a port.
    explicit manager(int port = VINE_PORT_NONE) : m_(detail::check_ptr(vine_create(port), "vine_create")) {}
    manager(manager &&o) noexcept : m_(std::exchange(o.m_, nullptr)) {}
    manager &operator=(manager &&o) noexcept
    {
        if (this != &o) {
            vine_delete(m_);
            m_ = std::exchange(o.m_, nullptr);
        }
        return *this;
    }
    manager(const manager &) = delete;
    manager &operator=(const manager &) = delete;
    ~manager() { vine_delete(m_); }

    vine_manager *get() const noexcept { return m_; }

private:
    /* The handle, refused once moved from: an empty task from a wait would
       read as a timeout, where every other call throws. */
    vine_manager *live(const char *call) const
    {
        if (!m_) throw error(VINE_ERROR_NULL, std::string(call) + ": the vine::manager was moved from");
        return m_;
    }

    /* What a wait returned: NULL is an empty task when nothing finished in
       time or nothing is outstanding, and an exception for any other error. */
    static task waited(vine_task *t, const char *call)
    {
        if (!t) {
            int code = vine_last_error_code();
            if (code != VINE_ERROR_TIMEOUT && code != VINE_ERROR_UNKNOWN_TASK && code != VINE_ERROR_IO)
                throw error(detail::last_code(), detail::last(call));
        }
        return task(t);
    }

public:
    int port() const { return vine_port(live("vine_port")); }
    void tune(const std::string &name, double value) { detail::check(vine_tune(m_, detail::cstr(name), value), "vine_tune"); }

    /// Submits; the manager owns the task until wait() returns it. On failure the
    /// task stays with the caller (and `t` still holds it).
    int submit(task &t)
    {
        int id = vine_submit(m_, t.get());
        if (id == 0) throw error(detail::last_code(), detail::last("vine_submit"));
        t.release();
        return id;
    }
    int submit(task &&t) { return submit(t); }

    /// The next finished task; empty on timeout (also when a factory cannot
    /// get workers: vine_last_error() then says why) or when nothing is
    /// outstanding. Any other failure throws vine::error: a bad timeout, a
    /// manager moved from (VINE_ERROR_NULL), a manager whose thread failed.
    task wait(int timeout_s = VINE_WAIT_FOREVER) { return waited(vine_wait(live("vine_wait"), timeout_s), "vine_wait"); }
    task wait_for(int id, int timeout_s = VINE_WAIT_FOREVER)
    {
        return waited(vine_wait_for_task_id(live("vine_wait_for_task_id"), id, timeout_s), "vine_wait_for_task_id");
    }
    task wait_for_tag(const std::string &tag, int timeout_s = VINE_WAIT_FOREVER)
    {
        return waited(vine_wait_for_tag(live("vine_wait_for_tag"), detail::cstr(tag), timeout_s), "vine_wait_for_tag");
    }

    bool empty() const { return detail::check(vine_empty(m_), "vine_empty") == 1; }
    /// How many more tasks the manager wants (0: not hungry); see vine_hungry.
    int hungry() const { return detail::check(vine_hungry(m_), "vine_hungry"); }
    void cancel(int id) { detail::check(vine_cancel_by_task_id(m_, id), "vine_cancel_by_task_id"); }
    int cancel_all() { return detail::check(vine_cancel_all(m_), "vine_cancel_all"); }
    vine_stats stats() const
    {
        vine_stats s{};
        detail::check(vine_get_stats(m_, &s), "vine_get_stats");
        return s;
    }
    void shutdown() { detail::check(vine_shutdown(m_), "vine_shutdown"); }

    /// A factory of this manager (see vine_factory_create); owned by the manager,
    /// which stops it at the latest when it is deleted.
    vine_factory *create_factory(const std::string &batch_type)
    {
        return detail::check_ptr(vine_factory_create(m_, detail::cstr(batch_type)), "vine_factory_create");
    }
    static void factory_set(vine_factory *f, const std::string &name, double value)
    {
        detail::check(vine_factory_set(f, detail::cstr(name), value), "vine_factory_set");
    }
    static void factory_set(vine_factory *f, const std::string &name, const std::string &value)
    {
        detail::check(vine_factory_set_string(f, detail::cstr(name), detail::cstr(value)), "vine_factory_set_string");
    }

    file declare_file(const std::string &path, int cache = VINE_CACHE_LEVEL_TASK, int flags = 0)
    {
        return file(detail::check_ptr(vine_declare_file(m_, detail::cstr(path), cache, flags), "vine_declare_file"));
    }
    file declare_buffer(const void *data, std::size_t len, int cache = VINE_CACHE_LEVEL_TASK, int flags = 0)
    {
        return file(detail::check_ptr(vine_declare_buffer(m_, data, len, cache, flags), "vine_declare_buffer"));
    }
    /// The same with a length of another integer type (`declare_buffer(p, 3)`);
    /// a negative length throws.
    template <class Len, class = std::enable_if_t<std::is_integral_v<Len> && !std::is_same_v<Len, bool>>>
    file declare_buffer(const void *data, Len len, int cache = VINE_CACHE_LEVEL_TASK, int flags = 0)
    {
        if constexpr (std::is_signed_v<Len>) {
            if (len < 0) throw error(VINE_ERROR_INVALID_ARGUMENT, "vine_declare_buffer: the length is negative");
        }
        return declare_buffer(data, static_cast<std::size_t>(len), cache, flags);
    }
    /// A text of its own length. Its cache level is the second argument only
    /// for a `std::string`: with a char array or pointer the second argument is
    /// always the length (as in `vine_declare_buffer`), so
    /// `declare_buffer("text", VINE_CACHE_LEVEL_WORKFLOW)` is one byte, cached
    /// for the task. Write `declare_buffer(std::string("text"), VINE_CACHE_LEVEL_WORKFLOW)`.
    file declare_buffer(const std::string &text, int cache = VINE_CACHE_LEVEL_TASK) { return declare_buffer(text.data(), text.size(), cache); }
    file declare_temp() { return file(detail::check_ptr(vine_declare_temp(m_), "vine_declare_temp")); }
    /// The current contents of a buffer, temp or file.
    std::string fetch(const file &f)
    {
        size_t n = 0;
        const char *p = detail::check_ptr(vine_fetch_file_len(m_, f.get(), &n), "vine_fetch_file_len");
        return std::string(p, n);
    }

private:
    vine_manager *m_;
};

} // namespace vine

#pragma pop_macro("vine_task_add_input")
#pragma pop_macro("vine_task_add_output")
#pragma pop_macro("vine_set_password_file")
#pragma pop_macro("vine_enable_monitoring")
#pragma pop_macro("vine_cancel_by_task_id")
#pragma pop_macro("vine_tune")
#pragma pop_macro("vine_enable_proportional_resources")
#pragma pop_macro("vine_disable_proportional_resources")

#endif // VINE_HPP
