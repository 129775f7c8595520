// /proc/net/xfrm_stat: the namespace's XFRM error counters, parsed as the kernel writes
// them (seq_printf "%-24s\t%lu\n", in the order of its MIB list).
#include <gtest/gtest.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "platform/xfrm.h"

namespace mobike::platform {
namespace {

using Counters = std::vector<std::pair<std::string, std::uint64_t>>;

TEST(XfrmStat, ParsesTheKernelsLinesInOrder) {
  const std::string text =
      "XfrmInError             \t0\n"
      "XfrmInNoStates          \t17\n"
      "XfrmInStateProtoError   \t3\n"
      "XfrmInStateSeqError     \t18446744073709551615\n"
      "XfrmOutNoStates         \t42\n";
  EXPECT_EQ(parse_xfrm_stat(text), (Counters{{"XfrmInError", 0},
                                             {"XfrmInNoStates", 17},
                                             {"XfrmInStateProtoError", 3},
                                             {"XfrmInStateSeqError", 18446744073709551615ull},
                                             {"XfrmOutNoStates", 42}}));
}

TEST(XfrmStat, SkipsWhatIsNotANameAndACount) {
  const std::string text =
      "\n"
      "XfrmInNoPols 5"                 // last line without its newline comes below
      "\n"
      "   \t\n"
      "XfrmInTmplMismatch\n"           // no value
      "XfrmInPolBlock \t-1\n"          // not a count
      "XfrmInPolError \t12abc\n"       // trailing garbage
      "XfrmOutPolDead \t99999999999999999999999\n"  // beyond 64 bits
      "XfrmFwdHdrError\t7\r\n"         // CRLF is tolerated
      "XfrmAcquireError 8";
  EXPECT_EQ(parse_xfrm_stat(text), (Counters{{"XfrmInNoPols", 5}, {"XfrmFwdHdrError", 7}, {"XfrmAcquireError", 8}}));
  EXPECT_TRUE(parse_xfrm_stat("").empty());
}

TEST(XfrmStat, ReadsTheFileAndNamesAMissingOne) {
  char path[] = "/tmp/xfrm_stat_test_XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  std::FILE* f = fdopen(fd, "w");
  ASSERT_NE(f, nullptr);
  std::fputs("XfrmInNoStates          \t2\nXfrmOutNoStates         \t3\n", f);
  std::fclose(f);
  auto r = read_xfrm_stat(path);
  std::remove(path);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(*r, (Counters{{"XfrmInNoStates", 2}, {"XfrmOutNoStates", 3}}));

  auto missing = read_xfrm_stat("/nonexistent/xfrm_stat");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, ENOENT);
  EXPECT_NE(missing.error().message().find("/nonexistent/xfrm_stat"), std::string::npos);
}

}  // namespace
}  // namespace mobike::platform
