# Sourced by scripts/test: starts a throw-away PostgreSQL cluster on 127.0.0.1 and exports
# GROUPGUARD_TEST_POSTGRES (and GROUPGUARD_TEST_PG_BIN, the server's programs). Installs the Debian packages when the server is missing.
# Fails loudly when the server cannot start: PostgreSQL tests are never skipped.

pg_bindir() {
    local dir
    for dir in /usr/lib/postgresql/*/bin; do
        [ -x "$dir/initdb" ] && { echo "$dir"; return 0; }
    done
    return 1
}

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

start_postgres() {
    local bin
    if ! bin=$(pg_bindir); then
        echo "PostgreSQL server not found: installing the Debian packages" >&2
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
        bin=$(pg_bindir) || { echo "PostgreSQL could not be installed" >&2; return 1; }
    fi
    PG_DIR=$(mktemp -d /tmp/groupguard-pg.XXXXXX)
    # The server refuses to run as root; run it as the package's postgres user then.
    local run=()
    if [ "$(id -u)" = 0 ]; then
        id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
        chown postgres "$PG_DIR"
        run=(runuser -u postgres --)
    fi
    PG_RUN=("${run[@]}")
    PG_BIN=$bin
    "${run[@]}" "$bin/initdb" -D "$PG_DIR/data" -U postgres --auth=trust --no-locale -E UTF8 >"$PG_DIR/initdb.log" 2>&1 \
        || { cat "$PG_DIR/initdb.log" >&2; return 1; }
    local port
    for port in 55439 55449 55459 55469; do
        if "${run[@]}" "$bin/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 60 \
            -o "-p $port -k $PG_DIR -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
            start >/dev/null 2>&1; then
            export GROUPGUARD_TEST_POSTGRES="postgres://postgres@127.0.0.1:$port/postgres"
            # For tests that run a server of their own, to stop and start it.
            export GROUPGUARD_TEST_PG_BIN="$bin"
            echo "PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$port ($PG_DIR)" >&2
            return 0
        fi
    done
    echo "PostgreSQL did not start; its log:" >&2
    cat "$PG_DIR/server.log" >&2
    return 1
}

stop_postgres() {
    [ -n "${PG_DIR:-}" ] || return 0
    "${PG_RUN[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$PG_DIR"
}
