#!/usr/bin/env bash
# A production-grade STAC API for the STAC tests: stac-fastapi-pgstac on PostgreSQL 15 + PostGIS + pgstac,
# on loopback, loaded with the test collections of tests/stac_fixtures.py (file:/// hrefs into tests/data).
#
#   eval "$(.ci/pgstac.sh start)"     # installs what is missing, starts both servers, prints the export line
#   .venv/bin/pytest tests/test_stac.py tests/test_imagery.py    # now against pgstac (GEOSAM_PGSTAC_URL)
#   .ci/pgstac.sh stop
#
# Run from anywhere as root (apt) or as a user that can run `runuser -u postgres`. Progress goes to stderr;
# stdout carries only `export GEOSAM_PGSTAC_URL=...`. Settings: PYTHON (default .venv/bin/python),
# GEOSAM_PGSTAC_STATE (default /tmp/geosam-pgstac), PGPORT (5439), GEOSAM_PGSTAC_PORT (8082).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-$ROOT/.venv/bin/python}
BIN=$(dirname "$PY")
STATE=${GEOSAM_PGSTAC_STATE:-/tmp/geosam-pgstac}
PGPORT=${PGPORT:-5439}
API_PORT=${GEOSAM_PGSTAC_PORT:-8082}
PGBIN=/usr/lib/postgresql/15/bin
DB=geosam
T0=$(date +%s)

log() { echo "[pgstac.sh +$(($(date +%s) - T0))s] $*" >&2; }
as_postgres() { runuser -u postgres -- "$@"; }

stop() {
    if [[ -f $STATE/api.pid ]]; then
        kill "$(cat "$STATE/api.pid")" 2>/dev/null || true
        rm -f "$STATE/api.pid"
    fi
    if [[ -f $STATE/data/postmaster.pid ]]; then
        as_postgres "$PGBIN/pg_ctl" -D "$STATE/data" -m fast -w stop >&2 || true
    fi
    log "stopped"
}

install_packages() {
    if ! dpkg -s postgresql-15-postgis-3 >/dev/null 2>&1 || [[ ! -x $PGBIN/initdb ]]; then
        log "apt-get install postgresql postgresql-15-postgis-3"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >&2
        apt-get install -y -qq --no-install-recommends postgresql postgresql-15-postgis-3 >&2
    fi
    if ! "$PY" -c "import pypgstac, stac_fastapi.pgstac, uvicorn" 2>/dev/null; then
        # The project's `pgstac` extra pins the server packages; constraining every installed package
        # to its current version keeps them from moving torch, numpy or anything else of the stack.
        mkdir -p "$STATE"
        "$PY" -m pip freeze --exclude-editable | grep -v ' @ ' >"$STATE/constraints.txt"
        log "pip install -e .[pgstac] (constrained to the current venv)"
        "$PY" -m pip install -q -c "$STATE/constraints.txt" -e "$ROOT[pgstac]" >&2
    fi
}

start_postgres() {
    if [[ ! -f $STATE/data/PG_VERSION ]]; then
        log "initdb $STATE/data"
        mkdir -p "$STATE/data"
        chown -R postgres:postgres "$STATE"
        as_postgres "$PGBIN/initdb" -D "$STATE/data" -U postgres --auth=trust >"$STATE/initdb.log"
    fi
    chown postgres:postgres "$STATE"
    log "pg_ctl start (port $PGPORT)"
    as_postgres "$PGBIN/pg_ctl" -D "$STATE/data" -l "$STATE/postgres.log" -w \
        -o "-p $PGPORT -k $STATE -c listen_addresses=127.0.0.1" start >&2
    export PGHOST=127.0.0.1 PGPORT PGUSER=postgres PGDATABASE=$DB
    export PGPASSWORD=postgres # libpq-based tools want one even with trust authentication
    if ! psql -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname='$DB'" | grep -q 1; then
        psql -d postgres -qc "CREATE DATABASE $DB" >&2
    fi
}

load_catalog() {
    log "pypgstac migrate"
    "$BIN/pypgstac" migrate >&2
    log "load the test collections"
    (cd "$ROOT" && "$PY" -m tests.stac_fixtures "$STATE/catalog" >/dev/null)
    # one ndjson of collections and one of items: each pypgstac start costs about 2 s
    for f in "$STATE"/catalog/*/collection.json; do "$PY" -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))))' "$f"; done >"$STATE/collections.ndjson"
    cat "$STATE"/catalog/*/items.ndjson >"$STATE/items.ndjson"
    "$BIN/pypgstac" load collections "$STATE/collections.ndjson" --method upsert >&2
    "$BIN/pypgstac" load items "$STATE/items.ndjson" --method upsert >&2
}

start_api() {
    log "stac-fastapi-pgstac on 127.0.0.1:$API_PORT"
    # both the current (PG*) and the older (POSTGRES_*) setting names of stac-fastapi-pgstac
    env PGHOST=127.0.0.1 PGPORT="$PGPORT" PGUSER=postgres PGPASSWORD=postgres PGDATABASE=$DB \
        POSTGRES_HOST_READER=127.0.0.1 POSTGRES_HOST_WRITER=127.0.0.1 POSTGRES_PORT="$PGPORT" \
        POSTGRES_USER=postgres POSTGRES_PASS=postgres POSTGRES_DBNAME=$DB \
        nohup "$BIN/uvicorn" stac_fastapi.pgstac.app:create_app --factory --host 127.0.0.1 --port "$API_PORT" \
        >"$STATE/api.log" 2>&1 &
    echo $! >"$STATE/api.pid"
    local url=http://127.0.0.1:$API_PORT expected
    expected=$(find "$STATE/catalog" -name collection.json | wc -l)
    for _ in $(seq 1 120); do
        if "$PY" - "$url" "$expected" <<'EOF' 2>/dev/null; then
import json, sys, urllib.request
with urllib.request.urlopen(sys.argv[1] + "/collections", timeout=2) as r:
    sys.exit(0 if len(json.load(r)["collections"]) >= int(sys.argv[2]) else 1)
EOF
            log "ready: $url (setup took $(($(date +%s) - T0)) s)"
            echo "export GEOSAM_PGSTAC_URL=$url"
            return 0
        fi
        if ! kill -0 "$(cat "$STATE/api.pid")" 2>/dev/null; then break; fi
        sleep 0.5
    done
    log "stac-fastapi-pgstac did not come up; $STATE/api.log:"
    tail -30 "$STATE/api.log" >&2
    return 1
}

case ${1:-start} in
start)
    mkdir -p "$STATE"
    stop 2>/dev/null || true
    install_packages
    start_postgres
    load_catalog
    start_api
    ;;
stop) stop ;;
*)
    echo "usage: $0 [start|stop]" >&2
    exit 2
    ;;
esac
