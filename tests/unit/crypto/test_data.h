// Shared by the crypto tests: hex literals and the "name = hex" vector files under
// tests/data/crypto/.
#pragma once

#include <fstream>
#include <map>
#include <span>
#include <sstream>
#include <stdexcept>
#include <string>

#include "common/bytes.h"

namespace mobike::crypto::test {

inline Bytes hex(std::string_view s) {
  Bytes b = from_hex(s);
  // A typo in a vector must fail loudly, not silently compare two empty buffers.
  if (b.empty() && !s.empty()) throw std::invalid_argument("bad hex literal");
  return b;
}

inline ByteView view(std::string_view s) {
  return ByteView(reinterpret_cast<const std::uint8_t*>(s.data()), s.size());
}

class VectorFile {
 public:
  explicit VectorFile(const std::string& name) {
    const std::string path = std::string(MOBIKE_TEST_DATA) + "/crypto/" + name;
    std::ifstream in(path);
    if (!in) throw std::runtime_error("cannot open " + path);
    std::string line;
    while (std::getline(in, line)) {
      if (line.empty() || line[0] == '#') continue;
      const auto eq = line.find(" = ");
      if (eq == std::string::npos) throw std::runtime_error("bad line in " + path);
      values_[line.substr(0, eq)] = hex(line.substr(eq + 3));
    }
  }
  const Bytes& operator[](const std::string& key) const {
    auto it = values_.find(key);
    if (it == values_.end()) throw std::out_of_range("missing vector " + key);
    return it->second;
  }
  std::size_t size() const { return values_.size(); }

 private:
  std::map<std::string, Bytes> values_;
};

}  // namespace mobike::crypto::test
