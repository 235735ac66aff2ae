#!/usr/bin/env bash
# Builds the web app into web/dist/, which is committed: the node compiles dist/ into its
# binary (broker/src/http/web.rs), so building or running roost needs no Node. Run this
# after changing web/src, index.html or style.css, and commit dist/ with the change.
#
#   web/build.sh          install the locked npm packages and build dist/
#   web/build.sh --check  build into a temporary directory and fail if dist/ differs
#
# Needs Node.js and npm. Third-party code comes from package-lock.json only (`npm ci`).
set -euo pipefail
cd "$(dirname "$0")"

out=dist
if [ "${1:-}" = "--check" ]; then
    out=$(mktemp -d)
    trap 'rm -rf "$out"' EXIT
fi

npm ci --no-audit --no-fund --loglevel=error
mkdir -p "$out"
# One bundle: our modules and MQTT.js, minified, licences of bundled packages kept at its end.
./node_modules/.bin/esbuild src/main.js --bundle --format=esm --target=es2020 \
    --minify --legal-comments=eof --log-level=warning --outfile="$out/app.js"
cp index.html style.css "$out/"
# Served to browsers that take gzip (all of them): a third of the bytes. -n: no name or
# time in the header, so the same input gives the same file.
gzip -9 -n -k -f "$out/app.js"

if [ "$out" != dist ]; then
    diff -r dist "$out" >/dev/null || {
        echo "web/dist is not what web/build.sh builds from the sources: run web/build.sh and commit web/dist" >&2
        exit 1
    }
    echo "web/dist matches the sources"
fi
