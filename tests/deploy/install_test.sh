#!/usr/bin/env bash
# `cmake --install` puts every file where the systemd unit and docs/deployment.md
# expect it:
#   1. DESTDIR=$tmp cmake --install BUILD --prefix /usr  (a distribution package's way)
#      - the unit's ExecStart binary and its KEYROTD_CONFIG exist under DESTDIR;
#      - the config's `policies:` directory exists and holds only inactive
#        examples (*.yaml.example), so an unconfigured host refuses to start (78);
#      - every /usr and /etc path of deployment.md's "Files" table is there;
#      - the installed config validates with one example policy switched on;
#      - docs in /usr/share/doc/keyrotd;
#      - a second install keeps an edited /etc/keyrotd/keyrotd.yaml.
#   2. cmake --install BUILD --prefix $(mktemp -d): the same tree under that prefix.
#   install_test.sh BUILD_DIR
set -euo pipefail
build=${1:?usage: install_test.sh BUILD_DIR}
src=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/keyrot-install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
ok() { echo "ok: $*"; }
need_file() { [[ -f "$1" ]] && ok "${1#"$2"}" || fail "missing ${1#"$2"}"; }

# ---- 1. DESTDIR + --prefix /usr
dest=$tmp/dest
DESTDIR=$dest cmake --install "$build" --prefix /usr >"$tmp/install.log" 2>&1 ||
    { cat "$tmp/install.log"; echo "FAIL: cmake --install"; exit 1; }

[[ -x $dest/usr/bin/keyrotd ]] && ok "/usr/bin/keyrotd" || fail "no executable /usr/bin/keyrotd"
"$dest/usr/bin/keyrotd" --version >/dev/null && ok "keyrotd --version runs" || fail "keyrotd --version"

unit=$dest/usr/lib/systemd/system/keyrotd.service
need_file "$unit" "$dest"
exec_bin=$(sed -n 's/^ExecStart=\([^ ]*\).*/\1/p' "$unit" | head -1)
[[ -n $exec_bin && -x $dest$exec_bin ]] && ok "unit ExecStart $exec_bin installed" ||
    fail "unit ExecStart '$exec_bin' not installed"
config=$(sed -n 's/^Environment=KEYROTD_CONFIG=\(.*\)$/\1/p' "$unit" | head -1)
[[ -n $config && -f $dest$config ]] && ok "unit KEYROTD_CONFIG $config installed" ||
    fail "unit KEYROTD_CONFIG '$config' not installed"

etc=$dest/etc/keyrotd
cmp -s "$etc/keyrotd.yaml" "$src/policies/keyrotd.example.yaml" &&
    ok "/etc/keyrotd/keyrotd.yaml is the example config" || fail "/etc/keyrotd/keyrotd.yaml differs"
pol=$(sed -n 's/^policies:[[:space:]]*\([^[:space:]#]*\).*/\1/p' "$etc/keyrotd.yaml")
[[ $pol == /* ]] || pol=/etc/keyrotd/$pol
[[ -d $dest$pol ]] && ok "config policies: $pol exists" || fail "config policies: $pol missing"
n_examples=$(find "$dest$pol" -name '*.yaml.example' | wc -l)
n_active=$(find "$dest$pol" \( -name '*.yaml' -o -name '*.yml' -o -name '*.json' \) | wc -l)
n_src=$(find "$src/policies" -maxdepth 1 -name '*.yaml' ! -name keyrotd.example.yaml | wc -l)
[[ $n_examples -eq $n_src && $n_src -gt 0 ]] && ok "$n_examples example policies in $pol" ||
    fail "$n_examples example policies in $pol, want $n_src"
[[ $n_active -eq 0 ]] && ok "no active policy installed" || fail "$n_active active policies installed"

# deployment.md's "Files" table: every /usr and /etc path (not the optional key
# file the admin brings, not the runtime state directory).
while read -r path; do
    case $path in
        *sa-key.json | /var/*) continue ;;
        */\*.yaml) [[ -d $dest${path%/*} ]] && ok "docs: ${path%/*}/ exists" || fail "docs: ${path%/*}/ missing" ;;
        *) [[ -e $dest$path ]] && ok "docs: $path exists" || fail "docs: $path missing" ;;
    esac
done < <(sed -n 's/^| `\(\/[^`]*\)` |.*/\1/p' "$src/docs/deployment.md")

# The installed config validates once a policy is switched on (on a copy).
cp -r "$etc" "$tmp/etc-copy"
cp "$tmp/etc-copy/policies.d/partners-90d.yaml.example" "$tmp/etc-copy/policies.d/partners-90d.yaml"
if out=$("$dest/usr/bin/keyrotd" validate -c "$tmp/etc-copy/keyrotd.yaml" 2>&1); then
    ok "installed config + example policy validate"
else
    fail "keyrotd validate on the installed config: $out"
fi
# ... and, as installed, keyrotd refuses to start (no policy yet): exit 78.
set +e
"$dest/usr/bin/keyrotd" plan -c "$etc/keyrotd.yaml" >"$tmp/plan.log" 2>&1
rc=$?
set -e
[[ $rc -eq 78 ]] && grep -qi "polic" "$tmp/plan.log" &&
    ok "unconfigured install: keyrotd plan exits 78 (no policy) before any call" ||
    fail "unconfigured install: keyrotd plan exited $rc, want 78: $(tail -3 "$tmp/plan.log")"

doc=$dest/usr/share/doc/keyrotd
need_file "$doc/README.md" "$dest"
need_file "$doc/deployment.md" "$dest"
need_file "$doc/configuration.md" "$dest"
need_file "$doc/examples/keyrotd.service.d/credentials.conf" "$dest"
need_file "$dest/usr/share/keyrotd/keyrotd.json" "$dest"
need_file "$dest/usr/share/keyrotd/policy.schema.json" "$dest"

echo "# edited by the admin" >>"$etc/keyrotd.yaml"
DESTDIR=$dest cmake --install "$build" --prefix /usr >"$tmp/install2.log" 2>&1 || fail "second install"
grep -q "edited by the admin" "$etc/keyrotd.yaml" && ok "reinstall keeps an edited keyrotd.yaml" ||
    fail "reinstall overwrote /etc/keyrotd/keyrotd.yaml"

# ---- 2. another prefix, no DESTDIR
prefix=$tmp/prefix
cmake --install "$build" --prefix "$prefix" >"$tmp/install3.log" 2>&1 || fail "install --prefix"
for f in bin/keyrotd lib/systemd/system/keyrotd.service etc/keyrotd/keyrotd.yaml \
    etc/keyrotd/policies.d/partners-90d.yaml.example share/doc/keyrotd/README.md; do
    [[ -f $prefix/$f ]] && ok "--prefix P: P/$f" || fail "--prefix P: P/$f missing"
done

if [[ $fails -gt 0 ]]; then
    echo "FAILED: $fails check(s)"
    exit 1
fi
echo PASS
