// A small std::expected stand-in (g++ 12 has no <expected>): the packet path returns
// typed results instead of throwing.
#pragma once

#include <cassert>
#include <type_traits>
#include <utility>
#include <variant>

namespace mobike {

template <class E>
struct Unexpected {
  E error;
};

template <class E>
Unexpected<std::decay_t<E>> unexpected(E&& e) {
  return Unexpected<std::decay_t<E>>{std::forward<E>(e)};
}

template <class T, class E>
class [[nodiscard]] Expected {
 public:
  Expected(const T& v) : v_(std::in_place_index<0>, v) {}
  Expected(T&& v) : v_(std::in_place_index<0>, std::move(v)) {}
  template <class U, class = std::enable_if_t<std::is_constructible_v<T, U&&> &&
                                             !std::is_same_v<std::decay_t<U>, Expected> &&
                                             !std::is_same_v<std::decay_t<U>, T>>>
  Expected(U&& v) : v_(std::in_place_index<0>, T(std::forward<U>(v))) {}
  template <class G>
  Expected(Unexpected<G> e) : v_(std::in_place_index<1>, E(std::move(e.error))) {}

  bool has_value() const { return v_.index() == 0; }
  explicit operator bool() const { return has_value(); }

  T& value() & { assert(has_value()); return std::get<0>(v_); }
  const T& value() const& { assert(has_value()); return std::get<0>(v_); }
  T&& value() && { assert(has_value()); return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  const E& error() const { assert(!has_value()); return std::get<1>(v_); }

 private:
  std::variant<T, E> v_;
};

template <class E>
class [[nodiscard]] Expected<void, E> {
 public:
  Expected() = default;
  template <class G>
  Expected(Unexpected<G> e) : err_(E(std::move(e.error))), ok_(false) {}
  bool has_value() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const E& error() const { assert(!ok_); return err_; }

 private:
  E err_{};
  bool ok_ = true;
};

}  // namespace mobike
