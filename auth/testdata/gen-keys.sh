#!/bin/sh
# Regenerates the throwaway key pairs used by roost-auth's unit tests.
# These keys protect nothing: never use them outside tests.
# Run from this directory: ./gen-keys.sh
set -eu
cd "$(dirname "$0")/keys"

rsa() { # name bits
    openssl genpkey -algorithm RSA -pkeyopt "rsa_keygen_bits:$2" -out "$1.key" 2>/dev/null
    openssl pkey -in "$1.key" -pubout -out "$1.pem"
}
ec() { # name curve
    openssl genpkey -algorithm EC -pkeyopt "ec_paramgen_curve:$2" -out "$1.key"
    openssl pkey -in "$1.key" -pubout -out "$1.pem"
}
b64url() { xxd -r -p | base64 -w0 | tr '+/' '-_' | tr -d '='; }

rsa rsa1 2048
rsa rsa2 2048
rsa rsa-small 1024
ec ec1 P-256
ec ec2 P-256
ec p384 P-384
rm -f rsa-small.key p384.key   # only their public halves are needed (to be refused)

# The JWKS holds rsa2 (kid "jwks-rsa") and ec2 (kid "jwks-ec"), plus two keys a
# verifier must skip: an encryption key and a symmetric one.
n=$(openssl rsa -pubin -in rsa2.pem -noout -modulus | cut -d= -f2 | b64url)
pt=$(openssl pkey -pubin -in ec2.pem -outform DER | tail -c 64 | xxd -p -c 256)
x=$(printf %s "$pt" | cut -c1-64 | b64url)
y=$(printf %s "$pt" | cut -c65-128 | b64url)
cat > jwks.json <<JSON
{
  "keys": [
    {"kty": "RSA", "use": "sig", "alg": "RS256", "kid": "jwks-rsa", "n": "$n", "e": "AQAB"},
    {"kty": "EC", "use": "sig", "alg": "ES256", "kid": "jwks-ec", "crv": "P-256", "x": "$x", "y": "$y"},
    {"kty": "RSA", "use": "enc", "alg": "RSA-OAEP", "kid": "jwks-enc", "n": "$n", "e": "AQAB"},
    {"kty": "oct", "kid": "jwks-oct", "k": "c2VjcmV0"}
  ]
}
JSON
