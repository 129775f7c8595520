#include "ike/connection.h"

namespace mobike::ike {

namespace {

template <class E>
struct Word {
  std::string_view word;
  E value;
};

constexpr Word<AuthClass> kAuthWords[] = {{"psk", AuthClass::kPsk},
                                          {"pubkey", AuthClass::kPubkey},
                                          {"eap-mschapv2", AuthClass::kEapMschapv2},
                                          {"eap-tls", AuthClass::kEapTls}};
constexpr Word<StartAction> kStartWords[] = {
    {"none", StartAction::kNone}, {"initiate", StartAction::kInitiate}, {"trap", StartAction::kTrap}};

template <class E, std::size_t N>
std::string_view word_of(const Word<E> (&table)[N], E value) {
  for (const auto& w : table)
    if (w.value == value) return w.word;
  return "?";
}

template <class E, std::size_t N>
std::optional<E> value_of(const Word<E> (&table)[N], std::string_view word) {
  for (const auto& w : table)
    if (w.word == word) return w.value;
  return std::nullopt;
}

}  // namespace

std::string_view to_string(AuthClass c) { return word_of(kAuthWords, c); }
std::optional<AuthClass> auth_class_from_string(std::string_view word) { return value_of(kAuthWords, word); }
std::string_view to_string(StartAction a) { return word_of(kStartWords, a); }
std::optional<StartAction> start_action_from_string(std::string_view word) { return value_of(kStartWords, word); }

bool remote_address_allowed(const ConnectionConfig& c, const IpAddress& address) {
  if (c.remote_addrs.empty()) return true;
  for (const auto& r : c.remote_addrs) {
    if (r == "%any" || r == "0.0.0.0/0" || r == "::/0") return true;
    auto p = IpPrefix::parse(r);
    if (p && p->address.family() == address.family() && p->first() <= address &&
        address <= p->last())
      return true;
  }
  return false;
}

bool local_address_allowed(const ConnectionConfig& c, const IpAddress& address) {
  if (c.local_addrs.empty()) return true;
  for (const auto& a : c.local_addrs)
    if (a == address) return true;
  return false;
}

}  // namespace mobike::ike
