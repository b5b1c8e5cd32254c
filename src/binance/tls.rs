//! rustls client configuration: the ring provider and the bundled webpki roots (STUB).
