#!/bin/sh
# Makes the self-signed certificate and key that tests/tls.rs serves on 127.0.0.1 to show that
# klinecast refuses a certificate no bundled root vouches for. Run once; the output is committed.
# EC P-256, valid for 100 years, names localhost and 127.0.0.1; a leaf (CA:FALSE), so the only
# reason to refuse it is that no trusted root issued it (rustls: UnknownIssuer).
set -eu
cd "$(dirname "$0")/../tests/fixtures"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 36500 \
    -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
    -addext basicConstraints=critical,CA:FALSE -addext extendedKeyUsage=serverAuth \
    -keyout self-signed-key.pem -out self-signed-cert.pem
# rustls reads PKCS#8 keys: make sure the key is in that form.
openssl pkcs8 -topk8 -nocrypt -in self-signed-key.pem -out self-signed-key.pem.tmp
mv self-signed-key.pem.tmp self-signed-key.pem
