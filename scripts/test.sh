#!/usr/bin/env bash
# The whole test suite, on a fresh Debian machine or a developer's: installs what the tests need
# (redis-server, python3, isync for mbsync, prometheus, kubernetes-validate, check-jsonschema) when
# missing, checks formatting, then runs every test of the workspace and then every fuzz target
# for a bounded time (scripts/fuzz.sh).
# The integration tests spawn their own redis-server, S3 server (s3s-fs) and yubin processes.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
command -v mbsync >/dev/null 2>&1 || missing+=(isync)
# libfuzzer-sys compiles libFuzzer's C++ sources for the fuzz targets (scripts/fuzz.sh).
command -v c++ >/dev/null 2>&1 || missing+=(g++)
# Dovecot is the reference server of the differential test (services/yubin/tests/dovecot_diff.rs),
# which starts its own private instance; the package's system service is not used.
command -v dovecot >/dev/null 2>&1 || missing+=(dovecot-imapd)
# A private Postfix instance relays to Yubin's LMTP (services/yubin/tests/lmtp.rs); installed
# preseeded with "No configuration", so the package's own instance is neither set up nor started.
[ -x /usr/sbin/postfix ] || command -v postfix >/dev/null 2>&1 || missing+=(postfix)
# promtool checks infra/prometheus/, and the prometheus server evaluates the dashboard's queries
# (services/yubin/tests/deploy.rs); the tests start their own server on a free port.
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
# Offline schema checks from PyPI, kept in a virtualenv under target/: kubernetes-validate for
# k8s/, check-jsonschema (its bundled compose-spec schema) for infra/docker-compose.yml.
tools_venv="$PWD/target/test-tools"
schema_tools=(kubernetes-validate check-jsonschema)
need_schema_tools=false
for tool in "${schema_tools[@]}"; do
    command -v "$tool" >/dev/null 2>&1 || [ -x "$tools_venv/bin/$tool" ] || need_schema_tools=true
done
if $need_schema_tools && ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
    missing+=(python3-venv)
fi
if ((${#missing[@]})); then
    echo "installing: ${missing[*]}"
    sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    if [[ " ${missing[*]} " == *" postfix "* ]]; then
        echo "postfix postfix/main_mailer_type select No configuration" | $sudo debconf-set-selections
    fi
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# The test harness starts redis-server itself on free ports; a system service is not needed.

if $need_schema_tools; then
    echo "installing: ${schema_tools[*]} (PyPI) into target/test-tools"
    python3 -m venv "$tools_venv"
    "$tools_venv/bin/pip" install --quiet --disable-pip-version-check \
        kubernetes-validate==1.37.0 check-jsonschema==0.39.0
fi
export PATH="$PATH:$tools_venv/bin"

cargo fmt --all -- --check
(cd fuzz && cargo fmt -- --check)

log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace --locked --no-fail-fast "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
# The fuzz targets (IMAP receiver, LMTP receiver, MIME summary), each for a bounded time on the
# stable toolchain; YUBIN_FUZZ_SECONDS=0 skips them (e.g. while iterating on one test).
fuzz_status=0
if [ "${YUBIN_FUZZ_SECONDS:-30}" != 0 ]; then
    YUBIN_FUZZ_SECONDS="${YUBIN_FUZZ_SECONDS:-30}" bash scripts/fuzz.sh || fuzz_status=$?
fi
if [ "$fuzz_status" != 0 ]; then
    echo "fuzzing found a failing input (see above)"
    [ "$status" != 0 ] || status=$fuzz_status
fi
set -e
# cargo prints one "test result:" line per test binary (the last is often an empty doc-test run);
# close with the totals over all of them.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i) ~ /^passed;?$/) p += $(i-1); if ($(i) ~ /^failed;?$/) f += $(i-1) } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
