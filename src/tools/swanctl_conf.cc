#include "tools/swanctl_conf.h"

#include <glob.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace mobike::tools::swanctl {
namespace {

constexpr std::size_t kMaxDepth = 64;         // nested sections
constexpr std::size_t kMaxIncludeDepth = 16;  // include inside include
constexpr std::size_t kMaxFileSize = 4 << 20;

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; }

// Section names and keys: any printable character but . , : { } = " # and white space.
bool is_name_char(char c) {
  if (static_cast<unsigned char>(c) <= ' ' || c == 0x7f) return false;
  return std::string_view(".,:{}=\"#").find(c) == std::string_view::npos;
}

bool has_glob_chars(std::string_view s) { return s.find_first_of("*?[") != std::string_view::npos; }

// The text of one file with a position that cannot pass its end: every read goes through
// peek()/get(), which answer '\0' at the end.
class Cursor {
 public:
  Cursor(std::string_view text, std::string file) : text_(text), file_(std::move(file)) {}

  bool at_end() const { return pos_ >= text_.size(); }
  char peek() const { return at_end() ? '\0' : text_[pos_]; }
  char get() {
    if (at_end()) return '\0';
    char c = text_[pos_++];
    if (c == '\n') ++line_;
    return c;
  }
  std::size_t line() const { return line_; }
  const std::string& file() const { return file_; }
  Location here() const { return {file_, line_}; }

  void skip_blanks() {  // spaces and tabs, not newlines
    while (!at_end() && is_space(peek())) get();
  }
  void skip_comment() {
    while (!at_end() && peek() != '\n') get();
  }
  // White space, newlines and comments.
  void skip_all() {
    for (;;) {
      skip_blanks();
      if (peek() == '#')
        skip_comment();
      else if (peek() == '\n')
        get();
      else
        return;
    }
  }
  std::string name() {
    std::string out;
    while (!at_end() && is_name_char(peek())) out.push_back(get());
    return out;
  }

 private:
  std::string_view text_;
  std::string file_;
  std::size_t pos_ = 0;
  std::size_t line_ = 1;
};

std::string describe(char c) {
  if (c == '\0') return "the end of the file";
  if (c == '\n') return "the end of the line";
  return "'" + std::string(1, c) + "'";
}

class Parser {
 public:
  explicit Parser(const FileReader& read) : read_(read) {}

  Expected<Section, std::string> run(std::string_view text, const std::string& source_name) {
    Section root;
    root.where = {source_name, 1};
    if (!parse_file_text(text, source_name, root, 0, 0)) return unexpected(error_);
    return root;
  }

 private:
  bool fail(const Location& where, const std::string& what) {
    if (error_.empty()) error_ = where.str() + ": " + what;
    return false;
  }

  bool parse_file_text(std::string_view text, const std::string& file, Section& into, std::size_t depth,
                       std::size_t include_depth) {
    Cursor c(text, file);
    if (!body(c, into, depth, include_depth, /*top=*/true)) return false;
    return true;
  }

  // Settings and sections up to the '}' closing `s` (consumed) or, at a file's top, its end.
  bool body(Cursor& c, Section& s, std::size_t depth, std::size_t include_depth, bool top) {
    for (;;) {
      c.skip_all();
      if (c.at_end()) {
        if (top) return true;
        return fail(c.here(), "section '" + s.name + "' opened at line " + std::to_string(s.where.line) +
                                  " is not closed ('}' missing)");
      }
      if (c.peek() == '}') {
        if (top) return fail(c.here(), "'}' without a section to close");
        c.get();
        return true;
      }
      const Location at = c.here();
      std::string name = c.name();
      if (name.empty()) return fail(at, "expected a key or a section name, found " + describe(c.peek()));
      c.skip_blanks();
      if (name == "include" && c.peek() != '=' && c.peek() != '{' && c.peek() != ':') {
        if (!include(c, at, s, depth, include_depth)) return false;
        continue;
      }
      // A section's '{' may sit on the next line.
      if (c.peek() == '\n' || c.peek() == '#') {
        c.skip_all();
        if (c.peek() != '{' && c.peek() != ':')
          return fail(at, "expected '=' or '{' after '" + name + "'");
      }
      char op = c.get();
      if (op == '=') {
        auto value = read_value(c);
        if (!value) return false;
        set(s, Setting{std::move(name), std::move(*value), at});
      } else if (op == '{' || op == ':') {
        std::vector<std::string> refs;
        if (op == ':' && !read_refs(c, at, refs)) return false;
        if (depth + 1 > kMaxDepth) return fail(at, "sections nested deeper than " + std::to_string(kMaxDepth));
        Section& child = open(s, name, at);
        child.refs.insert(child.refs.end(), refs.begin(), refs.end());
        if (!body(c, child, depth + 1, include_depth, false)) return false;
      } else {
        return fail(at, "expected '=' or '{' after '" + name + "', found " + describe(op));
      }
    }
  }

  bool read_refs(Cursor& c, const Location& at, std::vector<std::string>& refs) {
    for (;;) {
      c.skip_all();
      std::string ref = c.name();
      if (ref.empty()) return fail(c.here(), "expected the name of a section to refer to, found " + describe(c.peek()));
      refs.push_back(std::move(ref));
      c.skip_all();
      char next = c.get();
      if (next == '{') return true;
      if (next != ',') return fail(at, "expected ',' or '{' after the references of a section, found " + describe(next));
    }
  }

  // After '=': a quoted string (escapes, may span lines) or the rest of the line up to '#'.
  std::optional<std::string> read_value(Cursor& c) {
    c.skip_blanks();
    std::string out;
    if (c.peek() == '"') {
      const Location start = c.here();
      c.get();
      for (;;) {
        if (c.at_end()) {
          fail(start, "quoted value not closed (missing '\"')");
          return std::nullopt;
        }
        char ch = c.get();
        if (ch == '"') break;
        if (ch != '\\') {
          out.push_back(ch);
          continue;
        }
        char e = c.get();
        switch (e) {
          case 'n': out.push_back('\n'); break;
          case 't': out.push_back('\t'); break;
          case 'r': out.push_back('\r'); break;
          case 'b': out.push_back('\b'); break;
          case 'f': out.push_back('\f'); break;
          case '\n': break;  // a line continued
          case '\0':
            fail(start, "quoted value not closed (missing '\"')");
            return std::nullopt;
          default: out.push_back(e); break;  // \" \\ and any other character as itself
        }
      }
      c.skip_blanks();
      if (c.peek() == '#') c.skip_comment();
      if (!c.at_end() && c.peek() != '\n') {
        fail(c.here(), "unexpected " + describe(c.peek()) + " after a quoted value");
        return std::nullopt;
      }
      return out;
    }
    while (!c.at_end() && c.peek() != '\n' && c.peek() != '#') out.push_back(c.get());
    while (!out.empty() && is_space(out.back())) out.pop_back();
    return out;
  }

  bool include(Cursor& c, const Location& at, Section& s, std::size_t depth, std::size_t include_depth) {
    auto pattern = read_value(c);
    if (!pattern) return false;
    if (pattern->empty()) return fail(at, "include without a file name");
    if (include_depth + 1 > kMaxIncludeDepth)
      return fail(at, "includes nested deeper than " + std::to_string(kMaxIncludeDepth) + " (a loop?)");
    std::filesystem::path p(*pattern);
    if (p.is_relative()) p = std::filesystem::path(c.file()).parent_path() / p;
    std::vector<std::string> files;
    if (has_glob_chars(*pattern)) {
      glob_t g{};
      int rc = ::glob(p.c_str(), 0, nullptr, &g);
      if (rc == 0)
        for (std::size_t i = 0; i < g.gl_pathc; ++i) files.emplace_back(g.gl_pathv[i]);  // sorted by glob
      ::globfree(&g);
      if (rc != 0 && rc != GLOB_NOMATCH) return fail(at, "include '" + *pattern + "': cannot list " + p.string());
    } else {
      files.push_back(p.string());
    }
    for (const auto& f : files) {
      auto text = read_(f);
      if (!text) return fail(at, "include '" + *pattern + "': cannot read " + f);
      if (!parse_file_text(*text, f, s, depth, include_depth + 1)) return false;
    }
    return true;
  }

  static void set(Section& s, Setting setting) {
    auto it = std::find_if(s.settings.begin(), s.settings.end(),
                           [&](const Setting& x) { return x.key == setting.key; });
    if (it != s.settings.end())
      *it = std::move(setting);
    else
      s.settings.push_back(std::move(setting));
  }

  static Section& open(Section& s, const std::string& name, const Location& at) {
    if (Section* existing = s.section(name)) return *existing;
    Section child;
    child.name = name;
    child.where = at;
    s.sections.push_back(std::move(child));
    return s.sections.back();
  }

  const FileReader& read_;
  std::string error_;
};

std::optional<std::string> read_whole_file(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) return std::nullopt;
  auto size = std::filesystem::file_size(path, ec);
  if (ec || size > kMaxFileSize) return std::nullopt;
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return std::nullopt;
  return ss.str();
}

}  // namespace

const Setting* Section::setting(std::string_view key) const {
  for (const auto& s : settings)
    if (s.key == key) return &s;
  return nullptr;
}

const Section* Section::section(std::string_view n) const {
  for (const auto& s : sections)
    if (s.name == n) return &s;
  return nullptr;
}

Section* Section::section(std::string_view n) {
  for (auto& s : sections)
    if (s.name == n) return &s;
  return nullptr;
}

Expected<Section, std::string> parse_text(std::string_view text, const std::string& source_name,
                                          const FileReader& read) {
  Parser p(read);
  return p.run(text, source_name);
}

Expected<Section, std::string> parse_file(const std::string& path) {
  auto text = read_whole_file(path);
  if (!text) return unexpected(path + ": cannot read (missing, not a regular file, or larger than 4 MiB)");
  FileReader reader = read_whole_file;
  return parse_text(*text, path, reader);
}

std::vector<std::string> split_list(std::string_view value) {
  std::vector<std::string> out;
  std::size_t i = 0;
  while (i <= value.size()) {
    auto comma = value.find(',', i);
    if (comma == std::string_view::npos) comma = value.size();
    std::string_view item = value.substr(i, comma - i);
    while (!item.empty() && (is_space(item.front()) || item.front() == '\n')) item.remove_prefix(1);
    while (!item.empty() && (is_space(item.back()) || item.back() == '\n')) item.remove_suffix(1);
    if (!item.empty()) out.emplace_back(item);
    i = comma + 1;
  }
  return out;
}

}  // namespace mobike::tools::swanctl
