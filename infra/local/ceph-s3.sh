#!/usr/bin/env bash
# A throwaway one-node Ceph cluster (1 mon, 1 memstore OSD, radosgw) on 127.0.0.1, for the tests
# that need an S3 server that enforces signatures and conditional requests.
#
#   bash infra/local/ceph-s3.sh start    # idempotent; prints the env (also written to $DIR/s3.env)
#   bash infra/local/ceph-s3.sh status   # exit 0 if the S3 endpoint answers
#   bash infra/local/ceph-s3.sh env      # prints $DIR/s3.env
#   bash infra/local/ceph-s3.sh stop     # kills the daemons and removes $DIR
#
# Needs Debian's packages: apt-get install -y --no-install-recommends radosgw ceph-mon ceph-osd
# (plus curl and uuid-runtime, which those normally pull in or the image already has).
# Runs the daemons directly (no systemd), as the current user, with everything under $DIR.
# Auth (cephx) is off inside the cluster; S3 requests are still signed and checked by radosgw.
#
# Environment:
#   XRONOX_CEPH_DIR          state dir (default /tmp/xronox-ceph)
#   XRONOX_CEPH_RGW_PORT     S3 port (default 7480)
#   XRONOX_CEPH_MON_PORT     monitor port, msgr2 (default 46789)
#   XRONOX_CEPH_MEM_BYTES    memstore size of the one OSD (default 2147483648 = 2 GiB; RAM is
#                            only used as objects are written)
#   XRONOX_CEPH_START_TIMEOUT  seconds to wait for each stage (default 180)
set -euo pipefail

DIR="${XRONOX_CEPH_DIR:-/tmp/xronox-ceph}"
RGW_PORT="${XRONOX_CEPH_RGW_PORT:-7480}"
MON_PORT="${XRONOX_CEPH_MON_PORT:-46789}"
MEM_BYTES="${XRONOX_CEPH_MEM_BYTES:-2147483648}"
TIMEOUT="${XRONOX_CEPH_START_TIMEOUT:-180}"
MAX_BUCKETS=1000000
HOST=127.0.0.1
ENDPOINT="http://${HOST}:${RGW_PORT}"
CONF="${DIR}/ceph.conf"
ENV_FILE="${DIR}/s3.env"

# Fixed test credentials: this cluster only listens on loopback and is thrown away by `stop`.
ACCESS_KEY="xronox-ceph-access"
SECRET_KEY="xronox-ceph-secret-0123456789abcdefghij"
# RGW's default zonegroup accepts SigV4 for any region in the credential scope, but CreateBucket
# with a LocationConstraint must name the zonegroup; SDK clients on us-east-1 send none.
REGION="us-east-1"

log() { printf '[ceph-s3] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

ceph_cli() { timeout 60 ceph -c "$CONF" --connect-timeout 30 "$@"; }

endpoint_up() { curl -s -o /dev/null --max-time 3 "${ENDPOINT}/"; }

pid_alive() { [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

port_busy() { (exec 3<>"/dev/tcp/${HOST}/$1") 2>/dev/null; }

# wait_for DESCRIPTION COMMAND...: retry COMMAND every 2 s until it succeeds or TIMEOUT passes.
wait_for() {
  local what="$1"; shift
  local start=$SECONDS next=$((SECONDS + 15))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS - start >= TIMEOUT)); then
      log "gave up waiting for ${what} after ${TIMEOUT}s; last log lines:"
      tail -n 20 "${DIR}"/log/*.log >&2 2>/dev/null || true
      return 1
    fi
    if ((SECONDS >= next)); then
      log "still waiting for ${what} ($((SECONDS - start))s)"
      next=$((SECONDS + 15))
    fi
    sleep 2
  done
  log "${what}: ok after $((SECONDS - start))s"
}

write_env() {
  cat >"${ENV_FILE}.tmp" <<EOF
XRONOX_CEPH_S3_ENDPOINT=${ENDPOINT}
XRONOX_CEPH_S3_ACCESS_KEY=${ACCESS_KEY}
XRONOX_CEPH_S3_SECRET_KEY=${SECRET_KEY}
XRONOX_CEPH_S3_REGION=${REGION}
EOF
  mv "${ENV_FILE}.tmp" "${ENV_FILE}"
}

write_conf() {
  local fsid
  fsid="$(uuidgen)"
  cat >"$CONF" <<EOF
[global]
fsid = ${fsid}
mon host = [v2:${HOST}:${MON_PORT}]
public addr = ${HOST}
cluster addr = ${HOST}
ms bind ipv6 = false
auth cluster required = none
auth service required = none
auth client required = none
keyring = /dev/null
run dir = ${DIR}/run
admin socket = ${DIR}/run/\$name.asok
pid file = ${DIR}/run/\$name.pid
log file = ${DIR}/log/\$name.log
log to stderr = false
err to stderr = true
crash dir = ${DIR}/crash
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon data avail warn = 2
mon data avail crit = 1
mon warn on insecure global id reclaim allowed = false
# A daemon that cannot reach the monitor gives up after this instead of the default 300 s.
client mount timeout = 60

[mon]
mon data = ${DIR}/mon/\$cluster-\$id
mon cluster log file = ${DIR}/log/mon-cluster.log

[osd]
osd data = ${DIR}/osd/\$cluster-\$id
osd objectstore = memstore
memstore device bytes = ${MEM_BYTES}
osd fast shutdown = true

[client.rgw.xronox]
rgw frontends = beast endpoint=${HOST}:${RGW_PORT} tcp_nodelay=1
# radosgw defaults to a 'secure' mon connection, which needs cephx; with auth off only crc exists.
ms mon client mode = crc
rgw enable usage log = false
rgw thread pool size = 64
EOF
}

cmd_start() {
  local t0=$SECONDS
  for bin in ceph ceph-mon ceph-osd radosgw radosgw-admin monmaptool uuidgen curl timeout; do
    command -v "$bin" >/dev/null || die "'$bin' not found: apt-get install -y --no-install-recommends radosgw ceph-mon ceph-osd curl uuid-runtime"
  done

  if [[ -f "$ENV_FILE" ]] && pid_alive "${DIR}/run/client.rgw.xronox.pid" && endpoint_up; then
    log "already running at ${ENDPOINT}"
    # A gateway started by an older version of this script kept the default bucket limit.
    timeout 60 radosgw-admin -c "$CONF" user modify --uid=xronox --max-buckets="$MAX_BUCKETS" >>"${DIR}/log/setup.log" 2>&1 || true
    cat "$ENV_FILE"
    return 0
  fi
  if [[ -d "$DIR" ]]; then
    log "found a stale or half-started cluster in ${DIR}; removing it"
    cmd_stop
  fi
  port_busy "$RGW_PORT" && die "port ${RGW_PORT} is already in use (set XRONOX_CEPH_RGW_PORT)"
  port_busy "$MON_PORT" && die "port ${MON_PORT} is already in use (set XRONOX_CEPH_MON_PORT)"

  mkdir -p "${DIR}"/{run,log,crash,mon,osd}
  write_conf

  log "creating the monitor"
  monmaptool --create --clobber --fsid "$(awk '/^fsid/ {print $3}' "$CONF")" \
    --addv a "[v2:${HOST}:${MON_PORT}]" "${DIR}/monmap" >/dev/null
  ceph-mon -c "$CONF" --mkfs -i a --monmap "${DIR}/monmap" 2>>"${DIR}/log/setup.log"
  ceph-mon -c "$CONF" -i a 2>>"${DIR}/log/setup.log"
  wait_for "monitor" ceph_cli mon stat

  log "creating the OSD (memstore, $((MEM_BYTES / 1048576)) MiB)"
  local osd_uuid osd_id
  osd_uuid="$(uuidgen)"
  osd_id="$(ceph_cli osd new "$osd_uuid")"
  [[ "$osd_id" =~ ^[0-9]+$ ]] || die "unexpected answer to 'osd new': ${osd_id}"
  mkdir -p "${DIR}/osd/ceph-${osd_id}"
  ceph-osd -c "$CONF" -i "$osd_id" --mkfs --osd-uuid "$osd_uuid" 2>>"${DIR}/log/setup.log"
  ceph-osd -c "$CONF" -i "$osd_id" 2>>"${DIR}/log/setup.log"
  wait_for "OSD ${osd_id} up" osd_up

  log "starting radosgw on ${ENDPOINT}"
  radosgw -c "$CONF" -n client.rgw.xronox 2>>"${DIR}/log/setup.log"
  wait_for "S3 endpoint ${ENDPOINT}" endpoint_up

  log "creating the S3 user"
  # Every test run makes a few hundred buckets (a fresh one per database), and a gateway left
  # running is reused: lift RGW's default limit of 1000 buckets per user.
  timeout 120 radosgw-admin -c "$CONF" user create --uid=xronox --display-name="Xronox tests" \
    --access-key="$ACCESS_KEY" --secret-key="$SECRET_KEY" --max-buckets="$MAX_BUCKETS" >>"${DIR}/log/setup.log" 2>&1 \
    || die "radosgw-admin user create failed (see ${DIR}/log/setup.log)"

  write_env
  log "ready in $((SECONDS - t0))s; env in ${ENV_FILE}"
  cat "$ENV_FILE"
}

osd_up() { ceph_cli osd stat -f json | grep -q '"num_up_osds":1'; }

cmd_stop() {
  local pidf pid pids=()
  shopt -s nullglob
  # SIGKILL: everything is thrown away anyway, and a TERMed OSD waits up to 5 s to tell the
  # monitor it is going down.
  for pidf in "${DIR}"/run/*.pid; do
    pid="$(cat "$pidf" 2>/dev/null || true)"
    [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null && pids+=("$pid")
  done
  shopt -u nullglob
  if ((${#pids[@]})); then
    kill -KILL "${pids[@]}" 2>/dev/null || true
    for _ in $(seq 1 50); do
      local left=0
      for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && left=1; done
      ((left)) || break
      sleep 0.1
    done
  fi
  case "$DIR" in
    "" | / | /tmp | /tmp/) die "refusing to remove '${DIR}'" ;;
  esac
  rm -rf "$DIR"
  log "stopped; removed ${DIR}"
}

cmd_status() {
  if endpoint_up; then
    echo "Ceph S3 gateway answers at ${ENDPOINT} (state in ${DIR})"
  else
    echo "Ceph S3 gateway not answering at ${ENDPOINT}"
    return 1
  fi
}

cmd_env() {
  [[ -f "$ENV_FILE" ]] || die "no ${ENV_FILE}: run '$0 start' first"
  cat "$ENV_FILE"
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  env) cmd_env ;;
  *) echo "usage: $0 start|stop|status|env" >&2; exit 2 ;;
esac
