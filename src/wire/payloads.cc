#include "wire/payloads.h"

#include <utility>

namespace mobike::wire {

const NotifyPayload* find_notify(const std::vector<Payload>& payloads, std::uint16_t type) {
  for (const auto& p : payloads)
    if (auto* n = std::get_if<NotifyPayload>(&p.body); n && n->type == type) return n;
  return nullptr;
}

std::vector<const NotifyPayload*> find_notifies(const std::vector<Payload>& payloads,
                                                std::uint16_t type) {
  std::vector<const NotifyPayload*> out;
  for (const auto& p : payloads)
    if (auto* n = std::get_if<NotifyPayload>(&p.body); n && n->type == type) out.push_back(n);
  return out;
}

Payload make_notify(NotifyType type, Bytes data, ProtocolId protocol, Bytes spi) {
  NotifyPayload n;
  n.protocol = protocol;
  n.spi = std::move(spi);
  n.type = static_cast<std::uint16_t>(type);
  n.data = std::move(data);
  return Payload{PayloadType::kNotify, std::move(n)};
}

Payload make_notify(std::uint16_t type, Bytes data) {
  return make_notify(static_cast<NotifyType>(type), std::move(data));
}

}  // namespace mobike::wire
