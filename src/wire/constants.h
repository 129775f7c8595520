// IANA IKEv2 registry values used on the wire (RFC 7296 §3, RFC 4555, RFC 5996 errata).
#pragma once

#include <cstdint>
#include <string_view>

#include "common/transform_ids.h"

namespace mobike::wire {

enum class ExchangeType : std::uint8_t {
  kIkeSaInit = 34,
  kIkeAuth = 35,
  kCreateChildSa = 36,
  kInformational = 37,
};

enum class PayloadType : std::uint8_t {
  kNone = 0,
  kSa = 33,
  kKe = 34,
  kIdi = 35,
  kIdr = 36,
  kCert = 37,
  kCertReq = 38,
  kAuth = 39,
  kNonce = 40,
  kNotify = 41,
  kDelete = 42,
  kVendorId = 43,
  kTsi = 44,
  kTsr = 45,
  kSk = 46,
  kCp = 47,
  kEap = 48,
  kSkf = 53,  // Encrypted Fragment (RFC 7383 §2.5)
};

// Header flags (RFC 7296 §3.1).
inline constexpr std::uint8_t kFlagInitiator = 0x08;
inline constexpr std::uint8_t kFlagVersion = 0x10;
inline constexpr std::uint8_t kFlagResponse = 0x20;
inline constexpr std::uint8_t kIkeV2Version = 0x20;  // major 2, minor 0
inline constexpr std::size_t kHeaderSize = 28;

enum class ProtocolId : std::uint8_t { kNone = 0, kIke = 1, kAh = 2, kEsp = 3 };

enum class TransformType : std::uint8_t {
  kEncr = 1,
  kPrf = 2,
  kInteg = 3,
  kDh = 4,
  kEsn = 5,
};

using ::mobike::DhGroup;
using ::mobike::EncrId;
using ::mobike::EsnId;
using ::mobike::IntegId;
using ::mobike::PrfId;

inline constexpr std::uint16_t kAttrKeyLength = 14;  // TV-format transform attribute

enum class IdType : std::uint8_t {
  kIpv4Addr = 1,
  kFqdn = 2,
  kRfc822Addr = 3,
  kIpv6Addr = 5,
  kDerAsn1Dn = 9,
  kDerAsn1Gn = 10,
  kKeyId = 11,
};

enum class AuthMethod : std::uint8_t {
  kRsaSig = 1,
  kSharedKeyMic = 2,
  kDssSig = 3,
  kEcdsaSha256P256 = 9,  // RFC 4754
  kEcdsaSha384P384 = 10,
  kEcdsaSha512P521 = 11,
  kDigitalSignature = 14,
};

enum class TsType : std::uint8_t { kIpv4AddrRange = 7, kIpv6AddrRange = 8 };

// CERT / CERTREQ encodings (RFC 7296 §3.6).
inline constexpr std::uint8_t kCertX509Signature = 4;

// Configuration attributes (RFC 7296 §3.15.1, RFC 8598).
enum class CfgAttribute : std::uint16_t {
  kInternalIp4Address = 1,
  kInternalIp4Netmask = 2,
  kInternalIp4Dns = 3,
  kInternalIp6Address = 8,
  kInternalIp6Dns = 10,
  kInternalDnsDomain = 25,
};

enum class CfgType : std::uint8_t { kRequest = 1, kReply = 2, kSet = 3, kAck = 4 };

// Notify message types (RFC 7296 §3.10.1, RFC 4555 §4, RFC 6311, and ours).
enum class NotifyType : std::uint16_t {
  // Errors
  kUnsupportedCriticalPayload = 1,
  kInvalidIkeSpi = 4,
  kInvalidMajorVersion = 5,
  kInvalidSyntax = 7,
  kInvalidMessageId = 9,
  kInvalidSpi = 11,
  kNoProposalChosen = 14,
  kInvalidKePayload = 17,
  kAuthenticationFailed = 24,
  kSinglePairRequired = 34,
  kNoAdditionalSas = 35,
  kInternalAddressFailure = 36,
  kFailedCpRequired = 37,
  kTsUnacceptable = 38,
  kInvalidSelectors = 39,
  kUnacceptableAddresses = 40,
  kUnexpectedNatDetected = 41,
  kUseAssignedHoA = 42,
  kTemporaryFailure = 43,
  kChildSaNotFound = 44,
  // Status
  kInitialContact = 16384,
  kSetWindowSize = 16385,
  kAdditionalTsPossible = 16386,
  kIpcompSupported = 16387,
  kNatDetectionSourceIp = 16388,
  kNatDetectionDestinationIp = 16389,
  kCookie = 16390,
  kUseTransportMode = 16391,
  kHttpCertLookupSupported = 16392,
  kRekeySa = 16393,
  kEspTfcPaddingNotSupported = 16394,
  kNonFirstFragmentsAlso = 16395,
  kMobikeSupported = 16396,
  kAdditionalIp4Address = 16397,
  kAdditionalIp6Address = 16398,
  kNoAdditionalAddresses = 16399,
  kUpdateSaAddresses = 16400,
  kCookie2 = 16401,
  kNoNatsAllowed = 16402,
  kAuthLifetime = 16403,
  kMultipleAuthSupported = 16404,
  kAnotherAuthFollows = 16405,
  kRedirectSupported = 16406,
  kRedirect = 16407,
  kRedirectedFrom = 16408,
  kTicketLtOpaque = 16409,
  kTicketRequest = 16410,
  kTicketAck = 16411,
  kTicketNack = 16412,
  kTicketOpaque = 16413,
  kLinkId = 16414,
  kUseWespMode = 16415,
  kRohcSupported = 16416,
  kEapOnlyAuthentication = 16417,
  kChildlessIkev2Supported = 16418,
  kQuickCrashDetection = 16419,
  kIkev2MessageIdSyncSupported = 16420,
  kIpsecReplayCounterSyncSupported = 16421,
  kIkev2MessageIdSync = 16422,
  kIpsecReplayCounterSync = 16423,
  kSecurePasswordMethods = 16424,
  kPskPersist = 16425,
  kPskConfirm = 16426,
  kErxSupported = 16427,
  kIfomCapability = 16428,
  kSenderRequestId = 16429,
  kIkev2FragmentationSupported = 16430,
  kSignatureHashAlgorithms = 16431,
  kCloneIkeSaSupported = 16432,
  kCloneIkeSa = 16433,
  kPuzzle = 16434,
  kUsePpk = 16435,
  kPpkIdentity = 16436,
  kNoPpkAuth = 16437,
  kIntermediateExchangeSupported = 16438,
  kIp4Allowed = 16439,
  kIp6Allowed = 16440,
  kAdditionalKeyExchange = 16441,
  kUseAggfrag = 16442,
  // Private use (RFC 7296: 40960-65535); our default for SWITCH_TO_IP_ADDRESS
  // (docs/switch.md, "The notify number"), configurable at run time.
  kSwitchToIpAddressDefault = 61440,
};

// Error types are below 16384 (RFC 7296 §3.10.1).
inline constexpr bool is_error(NotifyType t) { return static_cast<std::uint16_t>(t) < 16384; }

// Name for logs ("UPDATE_SA_ADDRESSES"); numbers it does not know come back as
// "UNKNOWN".
std::string_view notify_name(std::uint16_t type);
std::string_view exchange_name(ExchangeType t);
std::string_view payload_name(std::uint8_t type);

}  // namespace mobike::wire
