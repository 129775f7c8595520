#include "wire/constants.h"

namespace mobike::wire {

std::string_view notify_name(std::uint16_t type) {
  switch (static_cast<NotifyType>(type)) {
    case NotifyType::kUnsupportedCriticalPayload: return "UNSUPPORTED_CRITICAL_PAYLOAD";
    case NotifyType::kInvalidIkeSpi: return "INVALID_IKE_SPI";
    case NotifyType::kInvalidMajorVersion: return "INVALID_MAJOR_VERSION";
    case NotifyType::kInvalidSyntax: return "INVALID_SYNTAX";
    case NotifyType::kInvalidMessageId: return "INVALID_MESSAGE_ID";
    case NotifyType::kInvalidSpi: return "INVALID_SPI";
    case NotifyType::kNoProposalChosen: return "NO_PROPOSAL_CHOSEN";
    case NotifyType::kInvalidKePayload: return "INVALID_KE_PAYLOAD";
    case NotifyType::kAuthenticationFailed: return "AUTHENTICATION_FAILED";
    case NotifyType::kSinglePairRequired: return "SINGLE_PAIR_REQUIRED";
    case NotifyType::kNoAdditionalSas: return "NO_ADDITIONAL_SAS";
    case NotifyType::kInternalAddressFailure: return "INTERNAL_ADDRESS_FAILURE";
    case NotifyType::kFailedCpRequired: return "FAILED_CP_REQUIRED";
    case NotifyType::kTsUnacceptable: return "TS_UNACCEPTABLE";
    case NotifyType::kInvalidSelectors: return "INVALID_SELECTORS";
    case NotifyType::kUnacceptableAddresses: return "UNACCEPTABLE_ADDRESSES";
    case NotifyType::kUnexpectedNatDetected: return "UNEXPECTED_NAT_DETECTED";
    case NotifyType::kUseAssignedHoA: return "USE_ASSIGNED_HoA";
    case NotifyType::kTemporaryFailure: return "TEMPORARY_FAILURE";
    case NotifyType::kChildSaNotFound: return "CHILD_SA_NOT_FOUND";
    case NotifyType::kInitialContact: return "INITIAL_CONTACT";
    case NotifyType::kSetWindowSize: return "SET_WINDOW_SIZE";
    case NotifyType::kAdditionalTsPossible: return "ADDITIONAL_TS_POSSIBLE";
    case NotifyType::kIpcompSupported: return "IPCOMP_SUPPORTED";
    case NotifyType::kNatDetectionSourceIp: return "NAT_DETECTION_SOURCE_IP";
    case NotifyType::kNatDetectionDestinationIp: return "NAT_DETECTION_DESTINATION_IP";
    case NotifyType::kCookie: return "COOKIE";
    case NotifyType::kUseTransportMode: return "USE_TRANSPORT_MODE";
    case NotifyType::kHttpCertLookupSupported: return "HTTP_CERT_LOOKUP_SUPPORTED";
    case NotifyType::kRekeySa: return "REKEY_SA";
    case NotifyType::kEspTfcPaddingNotSupported: return "ESP_TFC_PADDING_NOT_SUPPORTED";
    case NotifyType::kNonFirstFragmentsAlso: return "NON_FIRST_FRAGMENTS_ALSO";
    case NotifyType::kMobikeSupported: return "MOBIKE_SUPPORTED";
    case NotifyType::kAdditionalIp4Address: return "ADDITIONAL_IP4_ADDRESS";
    case NotifyType::kAdditionalIp6Address: return "ADDITIONAL_IP6_ADDRESS";
    case NotifyType::kNoAdditionalAddresses: return "NO_ADDITIONAL_ADDRESSES";
    case NotifyType::kUpdateSaAddresses: return "UPDATE_SA_ADDRESSES";
    case NotifyType::kCookie2: return "COOKIE2";
    case NotifyType::kNoNatsAllowed: return "NO_NATS_ALLOWED";
    case NotifyType::kAuthLifetime: return "AUTH_LIFETIME";
    case NotifyType::kMultipleAuthSupported: return "MULTIPLE_AUTH_SUPPORTED";
    case NotifyType::kAnotherAuthFollows: return "ANOTHER_AUTH_FOLLOWS";
    case NotifyType::kRedirectSupported: return "REDIRECT_SUPPORTED";
    case NotifyType::kRedirect: return "REDIRECT";
    case NotifyType::kRedirectedFrom: return "REDIRECTED_FROM";
    case NotifyType::kTicketLtOpaque: return "TICKET_LT_OPAQUE";
    case NotifyType::kTicketRequest: return "TICKET_REQUEST";
    case NotifyType::kTicketAck: return "TICKET_ACK";
    case NotifyType::kTicketNack: return "TICKET_NACK";
    case NotifyType::kTicketOpaque: return "TICKET_OPAQUE";
    case NotifyType::kLinkId: return "LINK_ID";
    case NotifyType::kUseWespMode: return "USE_WESP_MODE";
    case NotifyType::kRohcSupported: return "ROHC_SUPPORTED";
    case NotifyType::kEapOnlyAuthentication: return "EAP_ONLY_AUTHENTICATION";
    case NotifyType::kChildlessIkev2Supported: return "CHILDLESS_IKEV2_SUPPORTED";
    case NotifyType::kQuickCrashDetection: return "QUICK_CRASH_DETECTION";
    case NotifyType::kIkev2MessageIdSyncSupported: return "IKEV2_MESSAGE_ID_SYNC_SUPPORTED";
    case NotifyType::kIpsecReplayCounterSyncSupported:
      return "IPSEC_REPLAY_COUNTER_SYNC_SUPPORTED";
    case NotifyType::kIkev2MessageIdSync: return "IKEV2_MESSAGE_ID_SYNC";
    case NotifyType::kIpsecReplayCounterSync: return "IPSEC_REPLAY_COUNTER_SYNC";
    case NotifyType::kSecurePasswordMethods: return "SECURE_PASSWORD_METHODS";
    case NotifyType::kPskPersist: return "PSK_PERSIST";
    case NotifyType::kPskConfirm: return "PSK_CONFIRM";
    case NotifyType::kErxSupported: return "ERX_SUPPORTED";
    case NotifyType::kIfomCapability: return "IFOM_CAPABILITY";
    case NotifyType::kSenderRequestId: return "SENDER_REQUEST_ID";
    case NotifyType::kIkev2FragmentationSupported: return "IKEV2_FRAGMENTATION_SUPPORTED";
    case NotifyType::kSignatureHashAlgorithms: return "SIGNATURE_HASH_ALGORITHMS";
    case NotifyType::kCloneIkeSaSupported: return "CLONE_IKE_SA_SUPPORTED";
    case NotifyType::kCloneIkeSa: return "CLONE_IKE_SA";
    case NotifyType::kPuzzle: return "PUZZLE";
    case NotifyType::kUsePpk: return "USE_PPK";
    case NotifyType::kPpkIdentity: return "PPK_IDENTITY";
    case NotifyType::kNoPpkAuth: return "NO_PPK_AUTH";
    case NotifyType::kIntermediateExchangeSupported: return "INTERMEDIATE_EXCHANGE_SUPPORTED";
    case NotifyType::kIp4Allowed: return "IP4_ALLOWED";
    case NotifyType::kIp6Allowed: return "IP6_ALLOWED";
    case NotifyType::kAdditionalKeyExchange: return "ADDITIONAL_KEY_EXCHANGE";
    case NotifyType::kUseAggfrag: return "USE_AGGFRAG";
    // Named for the default code point only: a deployment that configures another
    // private-use value sees that one logged as a number by its caller.
    case NotifyType::kSwitchToIpAddressDefault: return "SWITCH_TO_IP_ADDRESS";
  }
  return "UNKNOWN";
}

std::string_view exchange_name(ExchangeType t) {
  switch (t) {
    case ExchangeType::kIkeSaInit: return "IKE_SA_INIT";
    case ExchangeType::kIkeAuth: return "IKE_AUTH";
    case ExchangeType::kCreateChildSa: return "CREATE_CHILD_SA";
    case ExchangeType::kInformational: return "INFORMATIONAL";
  }
  // Registered exchanges we do not implement still get their names in logs.
  switch (static_cast<std::uint8_t>(t)) {
    case 38: return "IKE_SESSION_RESUME";
    case 43: return "IKE_INTERMEDIATE";
    case 44: return "IKE_FOLLOWUP_KE";
  }
  return "UNKNOWN";
}

// The short notation of RFC 7296 §3.2 ("SA", "IDi", "N"...), except "Nonce", whose
// notation there ("Ni, Nr") depends on the sender's role.
std::string_view payload_name(std::uint8_t type) {
  switch (static_cast<PayloadType>(type)) {
    case PayloadType::kNone: return "NONE";
    case PayloadType::kSa: return "SA";
    case PayloadType::kKe: return "KE";
    case PayloadType::kIdi: return "IDi";
    case PayloadType::kIdr: return "IDr";
    case PayloadType::kCert: return "CERT";
    case PayloadType::kCertReq: return "CERTREQ";
    case PayloadType::kAuth: return "AUTH";
    case PayloadType::kNonce: return "Nonce";
    case PayloadType::kNotify: return "N";
    case PayloadType::kDelete: return "D";
    case PayloadType::kVendorId: return "V";
    case PayloadType::kTsi: return "TSi";
    case PayloadType::kTsr: return "TSr";
    case PayloadType::kSk: return "SK";
    case PayloadType::kCp: return "CP";
    case PayloadType::kEap: return "EAP";
    case PayloadType::kSkf: return "SKF";
  }
  return "UNKNOWN";
}

}  // namespace mobike::wire
