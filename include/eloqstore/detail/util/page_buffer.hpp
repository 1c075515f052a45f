// A page-sized, page-aligned byte buffer: direct I/O (O_DIRECT) reads and writes land in it
// without a bounce copy.
#pragma once

#include <algorithm>
#include <cstddef>
#include <memory>
#include <new>
#include <span>
#include <utility>

namespace eloqstore::detail {

class page_buffer {
 public:
  static constexpr std::size_t alignment = 4096;

  page_buffer() = default;
  explicit page_buffer(std::size_t size)
      : p_(static_cast<char*>(::operator new (size, std::align_val_t{alignment}))), size_(size) {}
  // A moved-from buffer is empty (size 0), like a default-constructed one.
  page_buffer(page_buffer&& o) noexcept : p_(std::move(o.p_)), size_(std::exchange(o.size_, 0)) {}
  page_buffer& operator=(page_buffer&& o) noexcept {
    p_ = std::move(o.p_);
    size_ = std::exchange(o.size_, 0);
    return *this;
  }

  // Replaces the contents with [first, last), reallocating only if the size differs.
  template <typename It>
  void assign(It first, It last) {
    const auto n = static_cast<std::size_t>(last - first);
    if (n != size_) {
      *this = page_buffer(n);
    }
    std::copy(first, last, p_.get());
  }

  [[nodiscard]] char* data() noexcept { return p_.get(); }
  [[nodiscard]] const char* data() const noexcept { return p_.get(); }
  [[nodiscard]] operator std::span<char>() noexcept { return span(); }
  [[nodiscard]] operator std::span<const char>() const noexcept { return span(); }
  [[nodiscard]] std::span<char> span() noexcept { return {p_.get(), size_}; }
  [[nodiscard]] std::span<const char> span() const noexcept { return {p_.get(), size_}; }
  [[nodiscard]] std::size_t size() const noexcept { return size_; }

 private:
  struct deleter {
    void operator()(char* p) const noexcept { ::operator delete (p, std::align_val_t{alignment}); }
  };
  std::unique_ptr<char, deleter> p_;
  std::size_t size_ = 0;
};

}  // namespace eloqstore::detail
