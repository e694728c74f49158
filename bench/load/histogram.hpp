#pragma once
// Latency percentiles in fixed memory: a log-linear histogram of nanoseconds (exact below
// 128 ns, then 64 buckets per power of two, so every reported value is within 1.6% of the
// true one). Millions of samples per run cost one increment each and no allocation.

#include <array>
#include <cstdint>

namespace gatehouse_load {

class latency_histogram {
public:
    void record(std::int64_t ns) noexcept {
        const auto v = static_cast<std::uint64_t>(ns < 0 ? 0 : ns);
        ++counts_[index_of(v)];
        ++total_;
    }

    std::uint64_t count() const noexcept { return total_; }

    /// The q-quantile (0 < q <= 1) in microseconds; 0 with no samples.
    double quantile_us(double q) const noexcept {
        if (total_ == 0) return 0.0;
        auto rank = static_cast<std::uint64_t>(q * static_cast<double>(total_));
        if (rank < 1) rank = 1;
        std::uint64_t seen = 0;
        for (std::size_t i = 0; i < counts_.size(); ++i) {
            seen += counts_[i];
            if (seen >= rank) return static_cast<double>(value_of(i)) / 1000.0;
        }
        return static_cast<double>(value_of(counts_.size() - 1)) / 1000.0;
    }

private:
    static constexpr std::size_t linear = 128;
    static constexpr std::size_t sub_buckets = 64;  // per power of two above `linear`
    static constexpr std::size_t buckets = linear + (64 - 7) * sub_buckets;

    static std::size_t index_of(std::uint64_t v) noexcept {
        if (v < linear) return static_cast<std::size_t>(v);
        const int e = 63 - __builtin_clzll(v);  // >= 7
        const auto mantissa = static_cast<std::size_t>((v >> (e - 6)) & (sub_buckets - 1));
        return linear + static_cast<std::size_t>(e - 7) * sub_buckets + mantissa;
    }

    // The middle of bucket `i`.
    static std::uint64_t value_of(std::size_t i) noexcept {
        if (i < linear) return i;
        const std::size_t e = (i - linear) / sub_buckets + 7;
        const std::size_t m = (i - linear) % sub_buckets;
        const std::uint64_t width = std::uint64_t{1} << (e - 6);
        return (sub_buckets + m) * width + width / 2;
    }

    std::array<std::uint64_t, buckets> counts_{};
    std::uint64_t total_ = 0;
};

}  // namespace gatehouse_load
