# shellcheck shell=bash disable=SC2034  # sets variables for the scripts that source it
# Shared by the bench/ scripts (sourced, not run): where the
# caches live, how the N keyring items and each tool's config are written, and
# the exact command line each tool is measured with.
#
# Every tool reads the same items: service "bench", username "user-1".."user-N",
# value "value-I". with-secrets, Python's keyring, secret-tool, secretspec's
# keyring provider and fnox's keychain provider all look items up by the
# `service` and `username` attributes alone (keyring-rs's Secret Service
# stores add `target` to the search only when one is configured), so one set
# of items, written once with secret-tool, serves them all. envchain alone
# keys items by namespace, so it gets a copy in namespace bench-N.

bench_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bench_out=$bench_root/target/bench
bench_venv=$bench_out/venv
bench_peers=$bench_out/peers

# The versions measured. Pinned so that reruns compare like with like; bump
# them on purpose, and note it in BENCHMARKS.md.
bench_secretspec_version=${BENCH_SECRETSPEC_VERSION:-0.21.1}
bench_fnox_version=${BENCH_FNOX_VERSION:-1.46.0}
bench_envchain_version=${BENCH_ENVCHAIN_VERSION:-0.1.0}

# Never reach the session bus of whoever runs this: everything talks to the
# private bus in DBUS_SESSION_BUS_ADDRESS, and nothing may fall back to
# $XDG_RUNTIME_DIR/bus.
unset XDG_RUNTIME_DIR

# bench_store_items COUNT: stores items 1..COUNT in the running private keyring.
bench_store_items() {
    local count=$1 i
    for ((i = 1; i <= count; i++)); do
        printf 'value-%d' "$i" |
            secret-tool store --label "bench user-$i" service bench username "user-$i"
    done
}

# bench_store_envchain N: envchain's namespace bench-N, with S_1..S_N. envchain
# (the Rust port on crates.io) finds a namespace's items by its own attributes,
# so it gets items of its own, with the same values.
bench_store_envchain() {
    local n=$1 i
    for ((i = 1; i <= n; i++)); do
        printf 'value-%d' "$i" |
            secret-tool store --label "bench-$n.S_$i" \
                name "bench-$n" key "S_$i" xdg:schema envchain.EnvironmentVariable
    done
}

# bench_write_configs DIR N: DIR/manifest-N.toml (with-secrets),
# DIR/fnox-N.toml and DIR/secretspec-N.toml, each naming S_1..S_N.
bench_write_configs() {
    local dir=$1 n=$2 i
    mkdir -p "$dir"
    {
        echo '[secrets]'
        for ((i = 1; i <= n; i++)); do
            echo "S_$i = { service = \"bench\", username = \"user-$i\" }"
        done
    } >"$dir/manifest-$n.toml"
    # fnox: the keychain provider's `service` is the item's service, and a
    # secret's `value` is its username. root = true stops the upward search
    # for other fnox.toml files; a missing item is an error, not a warning.
    {
        echo 'root = true'
        echo 'if_missing = "error"'
        echo
        echo '[providers.keychain]'
        echo 'type = "keychain"'
        echo 'service = "bench"'
        echo
        echo '[secrets]'
        for ((i = 1; i <= n; i++)); do
            echo "S_$i = { provider = \"keychain\", value = \"user-$i\" }"
        done
    } >"$dir/fnox-$n.toml"
    # secretspec: the keyring provider's `ref` names the item (service) and
    # the field (username), instead of its own secretspec/{project}/... names.
    {
        echo '[project]'
        echo 'name = "bench"'
        echo 'revision = "1.0"'
        echo
        echo '[profiles.default]'
        for ((i = 1; i <= n; i++)); do
            echo "S_$i = { description = \"secret $i\", required = true, ref = { item = \"bench\", field = \"user-$i\" } }"
        done
    } >"$dir/secretspec-$n.toml"
}

# bench_set_env DIR: BENCH_ENV, the env(1) prefix every measured command runs
# under: a clean environment with the private bus, a temporary HOME (so no
# tool reads the caller's config), and Python keyring forced to the Secret
# Service backend.
bench_set_env() {
    local dir=$1
    mkdir -p "$dir/home" "$dir/fnox-config"
    BENCH_ENV=(env -i
        PATH=/usr/local/bin:/usr/bin:/bin
        HOME="$dir/home"
        LANG=C.UTF-8
        DBUS_SESSION_BUS_ADDRESS="$DBUS_SESSION_BUS_ADDRESS"
        PYTHON_KEYRING_BACKEND=keyring.backends.SecretService.Keyring
        FNOX_CONFIG_DIR="$dir/fnox-config")
}

# bench_set_command TOOL N DIR WITH_SECRETS: BENCH_CMD, the argv that TOOL is
# measured with at N secrets (configs in DIR). Returns 1 for an unknown tool.
bench_set_command() {
    local tool=$1 n=$2 dir=$3 ws=$4
    case "$tool" in
        floor) BENCH_CMD=(env A=x true) ;;
        with-secrets) BENCH_CMD=("$ws" -m "$dir/manifest-$n.toml" -- true) ;;
        secret-tool) BENCH_CMD=(secret-tool lookup service bench username user-1) ;;
        python-keyring) BENCH_CMD=("$bench_venv/bin/python" "$bench_root/bench/keyring-get.py" "$n") ;;
        keyring-cli) BENCH_CMD=("$bench_venv/bin/keyring" get bench user-1) ;;
        secretspec) BENCH_CMD=("$bench_peers/bin/secretspec" -f "$dir/secretspec-$n.toml" run --provider keyring -- true) ;;
        protocol-floor) BENCH_CMD=("$bench_out/protocol-floor" "$n") ;;
        envchain) BENCH_CMD=("$bench_peers/bin/envchain" run "bench-$n" true) ;;
        fnox) BENCH_CMD=("$bench_peers/bin/fnox" -c "$dir/fnox-$n.toml" --no-daemon --if-missing error exec -- true) ;;
        *) return 1 ;;
    esac
}

# bench_start_keyring: a throwaway dbus-daemon + unlocked gnome-keyring,
# stopped when the calling script exits.
bench_start_keyring() {
    eval "$("$bench_root/scripts/private-keyring" start)"
    trap '"$bench_root/scripts/private-keyring" stop' EXIT
}

# install_peer NAME VERSION [CARGO-INSTALL-ARGS...]: installs NAME into
# $bench_peers (target/bench/peers unless the script sets another) unless it
# is there. Uses the script's `note`, `$quick` and `$install_timeout`. The build directory is kept, so a
# timed-out build resumes where it stopped on the next run.
install_peer() {
    local name=$1 version=$2
    shift 2
    local log=$bench_out/install-$name.log downgraded=$bench_peers/$name.downgraded
    if [ -x "$bench_peers/bin/$name" ]; then
        [ -s "$downgraded" ] && note "$name: built from its Cargo.lock, except $(cat "$downgraded")"
        return 0
    fi
    if [ -n "$quick" ]; then
        note "$name: skipped, not installed, and --quick installs no peers (run bench/run once without --quick)"
        return 1
    fi
    echo "==> cargo install $name $version (at most ${install_timeout} s; log: target/bench/install-$name.log)"
    if CARGO_TARGET_DIR=$bench_out/peer-build timeout "$install_timeout" \
        cargo install --locked --root "$bench_peers" "$@" "$name@$version" >"$log" 2>&1; then
        return 0
    fi
    # A registry mirror may lag behind the crate's Cargo.lock. Without
    # --locked, cargo re-resolves everything (for fnox 1.46 that picked an
    # incompatible fnox-core), so keep the lock file and move only each
    # missing version down to the newest one the registry has.
    local src
    src=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/"$name-$version" 2>/dev/null | head -n 1)
    if grep -q 'failed to select a version' "$log" && [ -n "$src" ]; then
        rm -rf "$bench_out/src/$name-$version"
        mkdir -p "$bench_out/src" "$bench_peers"
        cp -r "$src" "$bench_out/src/"
        src=$bench_out/src/$name-$version
        : >"$downgraded"
        local i error from to
        for i in 1 2 3 4 5 6 7 8 9 10; do
            error=$(cd "$src" && cargo metadata --locked --format-version 1 2>&1 >/dev/null) && break
            from=$(sed -n 's/.*requirement `\([^ ]*\) = .*(locked to \([^)]*\)).*/\1@\2/p' <<<"$error" | head -n 1)
            to=$(sed -n "s/^candidate versions found which didn't match: \([^,]*\).*/\1/p" <<<"$error" | head -n 1)
            [ -n "$from" ] && [ -n "$to" ] || break
            echo "==> $name: the registry lacks $from; using ${from%@*} $to"
            (cd "$src" && cargo update --quiet -p "$from" --precise "$to") >>"$log" 2>&1 || break
            printf '%s%s → %s' "$([ -s "$downgraded" ] && echo ', ')" "$from" "$to" >>"$downgraded"
        done
        if CARGO_TARGET_DIR=$bench_out/peer-build timeout "$install_timeout" \
            cargo install --locked --root "$bench_peers" "$@" --path "$src" >>"$log" 2>&1; then
            note "$name: built from its Cargo.lock, except $(cat "$downgraded")"
            return 0
        fi
    fi
    note "$name: skipped, \`cargo install\` failed or took over ${install_timeout} s (target/bench/install-$name.log)"
    return 1
}

# bench_spec FILE NAME [OPTION...] -- ARGV...: appends one command to FILE, a
# spec for bench/interleave.py. Options: --required (its failure stops the
# run), --expect-fail (it must exit non-zero), --every K (it runs in every
# K-th round only), --env VAR=VALUE (added to its environment), --tag
# KEY=VALUE (copied to the results; digits become a number).
bench_spec() {
    python3 - "$@" <<'PY'
import json, sys
file, name, *rest = sys.argv[1:]
spec = {"name": name, "env": {}, "tags": {}}
while rest and rest[0] != "--":
    opt = rest.pop(0)
    if opt == "--required":
        spec["required"] = True
    elif opt == "--expect-fail":
        spec["expect_fail"] = True
    elif opt == "--every":
        spec["every"] = int(rest.pop(0))
    elif opt in ("--env", "--tag"):
        key, _, value = rest.pop(0).partition("=")
        if opt == "--tag" and value.isdigit():
            value = int(value)
        spec["env" if opt == "--env" else "tags"][key] = value
    else:
        sys.exit(f"bench_spec: unknown option {opt}")
if not rest:
    sys.exit("bench_spec: no -- ARGV")
spec["argv"] = rest[1:]
with open(file, "a") as f:
    f.write(json.dumps(spec) + "\n")
PY
}
