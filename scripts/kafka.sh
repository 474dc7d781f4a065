#!/usr/bin/env bash
# A single-node Kafka 4.4.0 broker (KRaft, broker+controller in one JVM) on 127.0.0.1 for tests and local runs,
# from Maven Central jars (no Docker here). Usage: scripts/kafka.sh start|stop|restart|status
#
# Environment (all optional):
#   KAFKA_PORT             client listener port                    (9092)
#   KAFKA_CONTROLLER_PORT  KRaft controller listener port          (9093)
#   KAFKA_DATA_DIR         log dir, server.properties, pid, log    (<repo>/.kafka/data; port-suffixed if KAFKA_PORT≠9092)
#   KAFKA_CACHE_DIR        the broker's runtime jars, reused       ($HOME/.cache/raft-event-store/kafka-4.4.0)
#   KAFKA_HEAP             JVM heap                                (512m)
#   KAFKA_START_TIMEOUT_S  bounded wait for the port on start      (60)
#   KAFKA_STOP_TIMEOUT_S   bounded wait after SIGTERM on stop      (20)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
port="${KAFKA_PORT:-9092}"
cport="${KAFKA_CONTROLLER_PORT:-9093}"
if [[ "$port" == 9092 ]]; then default_data="$repo/.kafka/data"; else default_data="$repo/.kafka/data-$port"; fi
data="${KAFKA_DATA_DIR:-$default_data}"
cache="${KAFKA_CACHE_DIR:-$HOME/.cache/raft-event-store/kafka-4.4.0}"
heap="${KAFKA_HEAP:-512m}"
start_timeout="${KAFKA_START_TIMEOUT_S:-60}"
stop_timeout="${KAFKA_STOP_TIMEOUT_S:-20}"
pidfile="$data/kafka.pid"
logfile="$data/kafka.log"
props="$data/server.properties"
logdir="$data/kraft"

log() { echo "kafka.sh: $*" >&2; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

is_our_broker() { # pid: a live kafka.Kafka JVM started with this data dir's server.properties
  kill -0 "$1" 2>/dev/null || return 1
  tr '\0' '\n' <"/proc/$1/cmdline" 2>/dev/null | grep -qxF "$props"
}

running_pid() {
  local pid=""
  [[ -f "$pidfile" ]] && pid="$(cat "$pidfile" 2>/dev/null || true)"
  if [[ "$pid" =~ ^[0-9]+$ ]] && is_our_broker "$pid"; then
    echo "$pid"
    return 0
  fi
  # no (valid) pid file, e.g. lost to a race: find the JVM by its server.properties and record it again
  local p
  for p in /proc/[0-9]*; do
    p="${p#/proc/}"
    if grep -qaF 'kafka.Kafka' "/proc/$p/cmdline" 2>/dev/null && is_our_broker "$p"; then
      echo "$p" >"$pidfile"
      echo "$p"
      return 0
    fi
  done
  return 1
}

fetch_jars() {
  if [[ -f "$cache/.complete" ]] && compgen -G "$cache/kafka_2.13-4.4.0.jar" >/dev/null; then return 0; fi
  command -v mvn >/dev/null || { log "mvn not found (needed once to fetch the broker jars into $cache)"; exit 1; }
  log "fetching org.apache.kafka:kafka_2.13:4.4.0 runtime jars into $cache"
  local tmp="$cache.tmp.$$"
  rm -rf "$tmp"
  mkdir -p "$tmp"
  mvn -B -q -f "$here/kafka/pom.xml" dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp"
  rm -rf "$cache"
  mkdir -p "$(dirname "$cache")"
  mv "$tmp" "$cache"
  touch "$cache/.complete"
}

write_props() {
  mkdir -p "$data"
  cat >"$props" <<PROPS
# written by scripts/kafka.sh — single-node KRaft for tests
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$logdir
num.partitions=1
default.replication.factor=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=5
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=3
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
# transactions on one broker: markers are local; abort timed-out transactions quickly
transaction.abort.timed.out.transaction.cleanup.interval.ms=1000
transaction.remove.expired.transaction.cleanup.interval.ms=60000
log.flush.interval.messages=9223372036854775807
log.retention.hours=24
PROPS
}

start() {
  local pid
  if pid="$(running_pid)"; then
    log "already running (pid $pid, port $port)"
    return 0
  fi
  if port_open "$port"; then
    log "port $port already accepts connections but not from a broker started here ($pidfile); not starting"
    exit 1
  fi
  fetch_jars
  write_props
  if [[ ! -f "$logdir/meta.properties" ]]; then
    rm -rf "$logdir"
    local id
    # stdout only: slf4j writes to stderr, and a stray line in the id would be accepted silently
    id="$(java -cp "$cache/*" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1 | tr -d '[:space:]')"
    [[ "$id" =~ ^[A-Za-z0-9_-]{22}$ ]] || { log "bad cluster id from StorageTool: '$id'"; exit 1; }
    java -cp "$cache/*" -Dorg.slf4j.simpleLogger.defaultLogLevel=warn kafka.tools.StorageTool \
      format -t "$id" -c "$props" >"$data/format.log" 2>&1 || { cat "$data/format.log" >&2; exit 1; }
  fi
  [[ -f "$logfile" ]] && mv -f "$logfile" "$logfile.1"
  # fd 9 (the lock) is not passed on to the broker
  nohup java "-Xmx$heap" -XX:+UseG1GC -Djava.awt.headless=true \
    -Dorg.slf4j.simpleLogger.defaultLogLevel=warn \
    -cp "$cache/*" kafka.Kafka "$props" >>"$logfile" 2>&1 </dev/null 9>&- &
  pid=$!
  echo "$pid" >"$pidfile"
  local deadline=$((SECONDS + start_timeout))
  while ! port_open "$port"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      local rc=0
      wait "$pid" || rc=$?
      log "broker (pid $pid) exited during start with status $rc; log tail:"
      tail -n 40 "$logfile" >&2
      rm -f "$pidfile"
      exit 1
    fi
    if ((SECONDS >= deadline)); then
      log "broker not listening on 127.0.0.1:$port after ${start_timeout}s; log tail:"
      tail -n 40 "$logfile" >&2
      kill -KILL "$pid" 2>/dev/null || true
      rm -f "$pidfile"
      exit 1
    fi
    sleep 0.2
  done
  log "started (pid $pid, 127.0.0.1:$port, data $data)"
}

stop() {
  local pid
  if ! pid="$(running_pid)"; then
    log "not running (port $port)"
    rm -f "$pidfile"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + stop_timeout))
  while kill -0 "$pid" 2>/dev/null; do
    if ((SECONDS >= deadline)); then
      log "pid $pid still alive ${stop_timeout}s after SIGTERM; SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.2
  done
  rm -f "$pidfile" "$data/started-by-jest" # the marker of test/support/kafka-global-setup.js
  log "stopped (pid $pid)"
}

status() {
  local pid
  if pid="$(running_pid)"; then
    echo "running (pid $pid, 127.0.0.1:$port)"
    return 0
  fi
  echo "not running"
  return 1
}

# start/stop/restart of one data dir are serialised (e.g. two jest runs whose globalSetup both found the port
# closed: the second waits, then finds the broker running)
lock() {
  mkdir -p "$data"
  exec 9>"$data/.lock"
  flock -w $((start_timeout + stop_timeout + 120)) 9 || { log "could not lock $data/.lock"; exit 1; }
}

case "${1:-}" in
  start) lock; start ;;
  stop) lock; stop ;;
  restart) lock; stop; start ;;
  status) status ;;
  *)
    echo "usage: $0 start|stop|restart|status" >&2
    exit 2
    ;;
esac
