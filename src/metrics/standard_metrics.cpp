#include "metrics/standard_metrics.hpp"

#include <cmath>
#include <string>
#include <string_view>

#include "gatehouse/version.hpp"
#include "metrics/label_text.hpp"

#ifdef __linux__
#include <dirent.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <iterator>
#include <limits>
#include <sstream>
#include <vector>
#endif

namespace gatehouse::detail {
namespace {

#define GATEHOUSE_STRINGIFY_(x) #x
#define GATEHOUSE_STRINGIFY(x) GATEHOUSE_STRINGIFY_(x)

constexpr std::string_view compiler_name() noexcept {
#if defined(__clang__)
    return "clang " GATEHOUSE_STRINGIFY(__clang_major__) "." GATEHOUSE_STRINGIFY(
        __clang_minor__) "." GATEHOUSE_STRINGIFY(__clang_patchlevel__);
#elif defined(__GNUC__)
    return "gcc " GATEHOUSE_STRINGIFY(__GNUC__) "." GATEHOUSE_STRINGIFY(
        __GNUC_MINOR__) "." GATEHOUSE_STRINGIFY(__GNUC_PATCHLEVEL__);
#elif defined(_MSC_VER)
    return "msvc " GATEHOUSE_STRINGIFY(_MSC_VER);
#else
    return "unknown";
#endif
}

// `name="value"`, after a comma unless first. The revision comes from the build's command
// line, so it is not trusted to be plain.
void append_label(std::string& out, std::string_view name, std::string_view value) {
    if (!out.empty()) out += ',';
    out += name;
    out += "=\"";
    append_label_value(out, value);
    out += '"';
}

#ifdef __linux__

// The fields of /proc/self/stat after the command name (which may hold spaces and
// parentheses, hence the last ')'), so that index 0 is field 3, `state` (proc(5)).
std::vector<std::string> read_stat_fields() {
    std::ifstream in("/proc/self/stat");
    const std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    const auto close = text.rfind(')');
    if (close == std::string::npos) return {};
    std::istringstream rest(text.substr(close + 1));
    return {std::istream_iterator<std::string>(rest), std::istream_iterator<std::string>()};
}

// Field `number` of proc(5)'s numbering (14 is utime), as a double; NaN when unreadable.
double stat_field(int number) {
    const auto fields = read_stat_fields();
    const auto index = static_cast<std::size_t>(number - 3);
    if (index >= fields.size()) return std::nan("");
    try {
        return std::stod(fields[index]);
    } catch (...) {
        return std::nan("");
    }
}

double clock_ticks_per_second() {
    const long ticks = sysconf(_SC_CLK_TCK);
    return ticks > 0 ? static_cast<double>(ticks) : 100.0;
}

// Unix seconds of the boot, from /proc/stat's `btime`; NaN when unreadable.
double boot_time_seconds() {
    std::ifstream in("/proc/stat");
    std::string key;
    while (in >> key) {
        if (key == "btime") {
            double value = 0;
            if (in >> value) return value;
            break;
        }
        in.ignore(std::numeric_limits<std::streamsize>::max(), '\n');
    }
    return std::nan("");
}

// Descriptors open now. Since Linux 6.2 the size of /proc/self/fd is their count: one stat(),
// where listing the directory costs tens of milliseconds with tens of thousands of connections
// open, spent under the registry's lock. Older kernels report 0 there, and are listed.
double open_fds() {
    struct stat info {};
    if (stat("/proc/self/fd", &info) == 0 && info.st_size > 0) {
        return static_cast<double>(info.st_size);
    }
    DIR* dir = opendir("/proc/self/fd");
    if (dir == nullptr) return std::nan("");
    double count = 0;
    while (const dirent* entry = readdir(dir)) {
        if (entry->d_name[0] != '.') ++count;
    }
    closedir(dir);
    return count - 1;  // Not this listing's own descriptor.
}

double max_fds() {
    rlimit limit{};
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return std::nan("");
    return limit.rlim_cur == RLIM_INFINITY ? INFINITY : static_cast<double>(limit.rlim_cur);
}

void register_process_metrics(metrics_registry& r) {
    const double ticks = clock_ticks_per_second();
    const double page = static_cast<double>(sysconf(_SC_PAGESIZE));
    // proc(5): 14 utime and 15 stime in clock ticks, 20 num_threads, 22 starttime in clock
    // ticks after boot, 23 vsize in bytes, 24 rss in pages.
    r.counter_callback("process_cpu_seconds_total",
                       "Total user and system CPU time spent in seconds.", [ticks] {
                           const auto fields = read_stat_fields();
                           if (fields.size() < 13) return std::nan("");
                           return (std::stod(fields[11]) + std::stod(fields[12])) / ticks;
                       });
    r.gauge_callback("process_resident_memory_bytes", "Resident memory size in bytes.",
                     [page] { return stat_field(24) * page; });
    r.gauge_callback("process_virtual_memory_bytes", "Virtual memory size in bytes.",
                     [] { return stat_field(23); });
    r.gauge_callback("process_open_fds", "Number of open file descriptors.", open_fds);
    r.gauge_callback("process_max_fds", "Maximum number of open file descriptors.", max_fds);
    // A constant: read once, here.
    const double start = boot_time_seconds() + stat_field(22) / ticks;
    r.gauge_callback("process_start_time_seconds",
                     "Start time of the process since unix epoch in seconds.",
                     [start] { return start; });
    r.gauge_callback("process_threads", "Number of OS threads in the process.",
                     [] { return stat_field(20); });
}

#endif  // __linux__

}  // namespace

std::string build_info_labels() {
    std::string labels;
    append_label(labels, "version", version_string);
#ifdef GATEHOUSE_REVISION
    append_label(labels, "revision", GATEHOUSE_REVISION);
#endif
    append_label(labels, "compiler", compiler_name());
    return labels;
}

void register_standard_metrics(metrics_registry& registry) {
    registry
        .gauge("gatehouse_build_info",
               "Always 1: the gatehouse version, source revision (when the build knows it) and "
               "compiler of this build.",
               build_info_labels())
        .set(1);
#ifdef __linux__
    register_process_metrics(registry);
#endif
}

}  // namespace gatehouse::detail
