#include "crypto/tls_session.h"

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "crypto/openssl_util.h"

namespace mobike::crypto {

struct TlsSession::Impl {
  SSL_CTX* ctx = nullptr;
  SSL* ssl = nullptr;
  BIO* in = nullptr;   // what the peer sent, for libssl to read
  BIO* out = nullptr;  // what libssl wrote, for the peer
  ~Impl() {
    if (ssl) SSL_free(ssl);  // frees both BIOs
    if (ctx) SSL_CTX_free(ctx);
  }
};

namespace {

// The peer's certificate is judged after the handshake (TrustStore): accept it here.
int accept_any(int, X509_STORE_CTX*) { return 1; }

std::string ssl_error(const char* what) { return detail::openssl_error(what); }

}  // namespace

TlsSession::TlsSession(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
TlsSession::~TlsSession() = default;

Expected<std::unique_ptr<TlsSession>, std::string> TlsSession::create(const Config& config) {
  auto impl = std::make_unique<Impl>();
  impl->ctx = SSL_CTX_new(config.server ? TLS_server_method() : TLS_client_method());
  if (!impl->ctx) return unexpected(ssl_error("SSL_CTX_new"));
  SSL_CTX_set_min_proto_version(impl->ctx, config.min_version);
  SSL_CTX_set_max_proto_version(impl->ctx, config.max_version);
  // EAP-TLS has no use for tickets: one handshake per authentication (RFC 9190 §2.1.2
  // allows resumption; we offer none).
  SSL_CTX_set_options(impl->ctx, SSL_OP_NO_TICKET);
  // EAP-TLS never renegotiates: refuse it, and so let a client talk to servers without
  // the RFC 5746 extension (strongSwan's TLS stack sends none), which OpenSSL 3 refuses
  // by default for fear of a renegotiation that cannot happen here.
  SSL_CTX_set_options(impl->ctx, SSL_OP_NO_RENEGOTIATION);
  if (!config.server) SSL_CTX_set_options(impl->ctx, SSL_OP_LEGACY_SERVER_CONNECT);
  SSL_CTX_set_num_tickets(impl->ctx, 0);
  SSL_CTX_set_session_cache_mode(impl->ctx, SSL_SESS_CACHE_OFF);
  if (config.key && !config.certs.empty()) {
    if (SSL_CTX_use_certificate(impl->ctx, config.certs.front()->get()) != 1 ||
        SSL_CTX_use_PrivateKey(impl->ctx, config.key->get()) != 1 || SSL_CTX_check_private_key(impl->ctx) != 1)
      return unexpected(ssl_error("our certificate and key"));
    for (std::size_t i = 1; i < config.certs.size(); ++i)
      if (SSL_CTX_add1_chain_cert(impl->ctx, config.certs[i]->get()) != 1)
        return unexpected(ssl_error("intermediate certificate"));
  } else if (config.server) {
    return unexpected(std::string("a TLS server needs a certificate and its key"));
  }
  int mode = SSL_VERIFY_PEER;
  if (config.server && config.request_client_certificate) mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
  SSL_CTX_set_verify(impl->ctx, mode, accept_any);
  impl->ssl = SSL_new(impl->ctx);
  impl->in = BIO_new(BIO_s_mem());
  impl->out = BIO_new(BIO_s_mem());
  if (!impl->ssl || !impl->in || !impl->out) detail::fatal("SSL_new/BIO_new");
  BIO_set_mem_eof_return(impl->in, -1);  // no data yet is "retry", not end of stream
  SSL_set_bio(impl->ssl, impl->in, impl->out);
  if (config.server)
    SSL_set_accept_state(impl->ssl);
  else
    SSL_set_connect_state(impl->ssl);
  detail::clear_errors();
  return std::unique_ptr<TlsSession>(new TlsSession(std::move(impl)));
}

Expected<void, std::string> TlsSession::drive() {
  if (!established_) {
    int r = SSL_do_handshake(impl_->ssl);
    if (r == 1) {
      established_ = true;
    } else {
      int e = SSL_get_error(impl_->ssl, r);
      if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) return unexpected(ssl_error("TLS handshake"));
      detail::clear_errors();
      return {};
    }
  }
  // After the handshake: application data (and TLS 1.3's post-handshake messages).
  std::uint8_t buf[1024];
  for (;;) {
    int n = SSL_read(impl_->ssl, buf, sizeof buf);
    if (n > 0) {
      app_in_.insert(app_in_.end(), buf, buf + n);
      continue;
    }
    int e = SSL_get_error(impl_->ssl, n);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) break;
    if (e == SSL_ERROR_ZERO_RETURN) break;  // close_notify: nothing more to read
    return unexpected(ssl_error("TLS read"));
  }
  detail::clear_errors();
  return {};
}

Expected<void, std::string> TlsSession::start() { return drive(); }

Expected<void, std::string> TlsSession::feed(ByteView records) {
  if (!records.empty() && BIO_write(impl_->in, records.data(), static_cast<int>(records.size())) !=
                              static_cast<int>(records.size()))
    detail::fatal("BIO_write");
  return drive();
}

Bytes TlsSession::take_output() {
  Bytes out(static_cast<std::size_t>(BIO_ctrl_pending(impl_->out)));
  if (!out.empty()) {
    int n = BIO_read(impl_->out, out.data(), static_cast<int>(out.size()));
    out.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
  }
  return out;
}

std::string TlsSession::version() const { return established_ ? SSL_get_version(impl_->ssl) : ""; }

std::string TlsSession::cipher_suite() const {
  const SSL_CIPHER* c = established_ ? SSL_get_current_cipher(impl_->ssl) : nullptr;
  const char* name = c ? SSL_CIPHER_standard_name(c) : nullptr;
  return name ? name : "";
}

bool TlsSession::is_tls13() const { return established_ && SSL_version(impl_->ssl) == TLS1_3_VERSION; }

std::shared_ptr<const Certificate> TlsSession::peer_certificate() const {
  X509* peer = SSL_get1_peer_certificate(impl_->ssl);
  return peer ? std::make_shared<const Certificate>(peer) : nullptr;
}

std::vector<std::shared_ptr<const Certificate>> TlsSession::peer_chain() const {
  std::vector<std::shared_ptr<const Certificate>> out;
  STACK_OF(X509)* chain = SSL_get_peer_cert_chain(impl_->ssl);
  // A server's view of the chain leaves the client's own certificate out; a client's
  // includes the server's: skip it there.
  const int first = SSL_is_server(impl_->ssl) ? 0 : 1;
  for (int i = first; chain && i < sk_X509_num(chain); ++i) {
    X509* c = sk_X509_value(chain, i);
    X509_up_ref(c);
    out.push_back(std::make_shared<const Certificate>(c));
  }
  return out;
}

Expected<Bytes, std::string> TlsSession::export_keying_material(std::string_view label, std::size_t length,
                                                                ByteView context, bool use_context) const {
  if (!established_) return unexpected(std::string("no keys before the TLS handshake is complete"));
  Bytes out(length);
  if (SSL_export_keying_material(impl_->ssl, out.data(), out.size(), label.data(), label.size(),
                                 context.data(), context.size(), use_context ? 1 : 0) != 1)
    return unexpected(ssl_error("TLS exporter"));
  return out;
}

Expected<void, std::string> TlsSession::write_application_data(ByteView data) {
  if (!established_) return unexpected(std::string("no application data before the handshake"));
  if (SSL_write(impl_->ssl, data.data(), static_cast<int>(data.size())) != static_cast<int>(data.size()))
    return unexpected(ssl_error("TLS write"));
  return {};
}

}  // namespace mobike::crypto
