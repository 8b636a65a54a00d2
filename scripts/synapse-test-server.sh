#!/usr/bin/env bash
# A throw-away Synapse homeserver for the Matrix end-to-end tests: installed from PyPI into a
# cached virtualenv when missing, SQLite on tmpfs, listening on 127.0.0.1 only, no federation,
# rate limits relaxed. TEST ONLY: never expose it.
#
#   synapse-test-server.sh start     install if needed, write the config, start, wait until ready
#   synapse-test-server.sh stop      stop the instance this script started
#   synapse-test-server.sh env       print export lines (SYNAPSE_URL, SYNAPSE_SECRET)
#   synapse-test-server.sh reset     stop and wipe the data (the virtualenv stays)
#
# Environment: SYNAPSE_PORT (18008), SYNAPSE_VERSION (pinned), SYNAPSE_DIR (the virtualenv's
# home, cached), SYNAPSE_DATA (config, database, logs), SYNAPSE_SECRET.
set -euo pipefail

PORT="${SYNAPSE_PORT:-18008}"
VERSION="${SYNAPSE_VERSION:-1.163.2}"
HOME_DIR="${SYNAPSE_DIR:-$HOME/.cache/groupguard-synapse}"
VENV="$HOME_DIR/venv-$VERSION"
if [ -z "${SYNAPSE_DATA:-}" ]; then
    if [ -w /dev/shm ]; then SYNAPSE_DATA="/dev/shm/groupguard-synapse-$PORT"; else SYNAPSE_DATA="$HOME_DIR/data-$PORT"; fi
fi
DATA="$SYNAPSE_DATA"
SECRET="${SYNAPSE_SECRET:-groupguard-test-registration-secret}"
URL="http://127.0.0.1:$PORT"
PIDFILE="$DATA/synapse.pid"

install() {
    if "$VENV/bin/python" -c "import synapse, sys; sys.exit(synapse.__version__ != '$VERSION')" 2>/dev/null; then
        return
    fi
    python3 -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' \
        || { echo "synapse needs python3 >= 3.10" >&2; exit 1; }
    if ! python3 -c 'import ensurepip' 2>/dev/null; then
        apt-get install -y -q python3-venv >/dev/null
    fi
    mkdir -p "$HOME_DIR"
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check --only-binary=:all: \
        "matrix-synapse==$VERSION"
}

running() {
    [ -s "$PIDFILE" ] || return 1
    local pid
    pid="$(cat "$PIDFILE")"
    kill -0 "$pid" 2>/dev/null && grep -q synapse.app.homeserver "/proc/$pid/cmdline" 2>/dev/null
}

write_config() {
    local rl='{per_second: 100000, burst_count: 1000000}'
    mkdir -p "$DATA/media_store"
    cat >"$DATA/homeserver.yaml" <<EOF
# TEST ONLY, never expose this server.
server_name: "localhost"
public_baseurl: "$URL/"
pid_file: "$DATA/homeserver.pid"
log_config: "$DATA/log.yaml"
media_store_path: "$DATA/media_store"
signing_key_path: "$DATA/signing.key"
report_stats: false
listeners:
  - port: $PORT
    bind_addresses: ['127.0.0.1']
    type: http
    tls: false
    x_forwarded: false
    resources:
      - names: [client]
        compress: false
database:
  name: sqlite3
  args:
    database: "$DATA/homeserver.db"
enable_registration: false
registration_shared_secret: "$SECRET"
bcrypt_rounds: 4
macaroon_secret_key: "groupguard-test-macaroon-secret"
form_secret: "groupguard-test-form-secret"
trusted_key_servers: []
suppress_key_server_warning: true
federation_domain_whitelist: []
url_preview_enabled: false
enable_metrics: false
allow_guest_access: false
presence:
  enabled: false
limit_profile_requests_to_users_who_share_rooms: false
require_auth_for_profile_requests: false
rc_message: $rl
rc_registration: $rl
rc_registration_token_validity: $rl
rc_login:
  address: $rl
  account: $rl
  failed_attempts: $rl
rc_admin_redaction: $rl
rc_joins:
  local: $rl
  remote: $rl
rc_joins_per_room: $rl
rc_3pid_validation: $rl
rc_invites:
  per_room: $rl
  per_user: $rl
  per_issuer: $rl
rc_third_party_invite: $rl
rc_media_create: $rl
rc_presence:
  per_user: $rl
rc_delayed_event_mgmt: $rl
rc_room_creation: $rl
rc_reports: $rl
rc_user_directory: $rl
rc_profile: $rl
rc_key_requests: $rl
rc_federation:
  window_size: 1000
  sleep_limit: 10000
  sleep_delay: 0
  reject_limit: 100000
  concurrent: 1000
EOF
    cat >"$DATA/log.yaml" <<EOF
version: 1
formatters:
  precise:
    format: '%(asctime)s - %(name)s - %(lineno)d - %(levelname)s - %(message)s'
handlers:
  file:
    class: logging.FileHandler
    formatter: precise
    filename: $DATA/homeserver.log
loggers:
  synapse.storage.SQL:
    level: WARNING
root:
  level: WARNING
  handlers: [file]
disable_existing_loggers: false
EOF
}

start() {
    install
    if running; then
        return
    fi
    if curl -fsS -m 2 "$URL/_matrix/client/versions" >/dev/null 2>&1; then
        echo "something else answers on $URL; set SYNAPSE_PORT" >&2
        exit 1
    fi
    write_config
    [ -s "$DATA/signing.key" ] || "$VENV/bin/generate_signing_key" -o "$DATA/signing.key"
    setsid "$VENV/bin/python" -m synapse.app.homeserver -c "$DATA/homeserver.yaml" \
        >"$DATA/stdout.log" 2>&1 </dev/null &
    echo $! >"$PIDFILE"
    for _ in $(seq 1 450); do
        if curl -fsS -m 2 "$URL/_matrix/client/versions" >/dev/null 2>&1; then
            return
        fi
        if ! running; then
            echo "synapse exited during start-up:" >&2
            tail -n 30 "$DATA/stdout.log" "$DATA/homeserver.log" >&2 2>/dev/null || true
            exit 1
        fi
        sleep 0.2
    done
    echo "synapse did not answer on $URL within 90 s" >&2
    tail -n 30 "$DATA/stdout.log" "$DATA/homeserver.log" >&2 2>/dev/null || true
    exit 1
}

stop() {
    if running; then
        local pid
        pid="$(cat "$PIDFILE")"
        kill -TERM "$pid"
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.2
        done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    fi
    rm -f "$PIDFILE"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    install) install ;;
    env) echo "export SYNAPSE_URL=$URL SYNAPSE_SECRET=$SECRET" ;;
    reset) stop; rm -rf "$DATA" ;;
    *) echo "usage: $0 start|stop|install|env|reset" >&2; exit 2 ;;
esac
