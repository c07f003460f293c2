#!/usr/bin/env bash
# A local Kubernetes control plane without containers, as envtest runs it: the upstream kube-apiserver,
# kube-controller-manager and etcd (built from Go modules by build.sh) on loopback ports, RBAC
# authorization on, an admin kubeconfig. kube-controller-manager runs the controllers a deletion needs
# (namespace, garbage collector, service accounts) and the one that fills the aggregated default roles;
# there is no scheduler or kubelet, so Pods never run.
#
#   hack/controlplane/controlplane.sh up     build if needed, start, wait until /readyz, print the env
#   hack/controlplane/controlplane.sh env    print `export KUBECONFIG=...` for a running control plane
#   hack/controlplane/controlplane.sh down   stop it and remove its state
#   hack/controlplane/controlplane.sh restart-apiserver   stop kube-apiserver and start it again (fault tests)
#
# ECSRUN_CP_DIR       state directory (default .cache/controlplane/run)
# ECSRUN_CP_OWNER_PID stop the servers by themselves once this process is gone (tests set it)
# ECSRUN_CP_AUDIT     set: kube-apiserver writes an audit log of EcsTaskRun writes to $dir/audit.log (hack/faults)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
bin="${ECSRUN_CACHE_DIR:-$root/.cache}/bin"
dir="${ECSRUN_CP_DIR:-$root/.cache/controlplane/run}"

log() { echo "controlplane: $*" >&2; }
die() { log "$*"; exit 1; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

certs() {
  local c="$dir/pki"; mkdir -p "$c"
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=ecsrun-local-ca" \
    -keyout "$c/ca.key" -out "$c/ca.crt" 2>/dev/null
  sign() { # name subject [extension]
    openssl req -newkey rsa:2048 -nodes -subj "$2" -keyout "$c/$1.key" -out "$c/$1.csr" 2>/dev/null
    openssl x509 -req -in "$c/$1.csr" -CA "$c/ca.crt" -CAkey "$c/ca.key" -CAcreateserial -days 2 \
      ${3:+-extfile <(printf '%s' "$3")} -out "$c/$1.crt" 2>/dev/null
  }
  sign apiserver "/CN=kube-apiserver" "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc"
  sign admin "/O=system:masters/CN=ecsrun-admin" "extendedKeyUsage=clientAuth"
  openssl genrsa -out "$c/sa.key" 2048 2>/dev/null
  openssl rsa -in "$c/sa.key" -pubout -out "$c/sa.pub" 2>/dev/null
}

kubeconfig() { # port
  local c="$dir/pki" b64="base64 -w0"
  cat > "$dir/kubeconfig" <<KCFG
apiVersion: v1
kind: Config
clusters:
- name: ecsrun-local
  cluster:
    server: https://127.0.0.1:$1
    certificate-authority-data: $($b64 < "$c/ca.crt")
users:
- name: ecsrun-admin
  user:
    client-certificate-data: $($b64 < "$c/admin.crt")
    client-key-data: $($b64 < "$c/admin.key")
contexts:
- name: ecsrun-local
  context: {cluster: ecsrun-local, user: ecsrun-admin, namespace: default}
current-context: ecsrun-local
KCFG
}

running() { [ -f "$dir/pids" ] && kill -0 $(cat "$dir/pids") 2>/dev/null; }

up() {
  if running; then log "already running"; env_; return; fi
  command -v openssl >/dev/null || die "openssl is required (apt-get install openssl)"
  "$here/build.sh" >&2
  rm -rf "$dir"; mkdir -p "$dir"
  local start=$SECONDS
  certs
  local etcd_port peer_port api_port
  etcd_port=$(free_port); peer_port=$(free_port); api_port=$(free_port)
  "$bin/etcd" --name ecsrun --data-dir "$dir/etcd" --unsafe-no-fsync --log-level error \
    --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
    --initial-cluster "ecsrun=http://127.0.0.1:$peer_port" > "$dir/etcd.log" 2>&1 &
  local etcd_pid=$!
  local c="$dir/pki"
  echo "$etcd_port" > "$dir/etcd-port"
  echo "$api_port" > "$dir/port"
  start_apiserver
  local api_pid=$!
  echo "$etcd_pid $api_pid" > "$dir/pids"
  kubeconfig "$api_port"
  if [ -n "${ECSRUN_CP_OWNER_PID:-}" ]; then
    # The servers must not outlive whoever started them (a test run that crashed, a killed demo).
    ( while kill -0 "$ECSRUN_CP_OWNER_PID" 2>/dev/null; do sleep 1; done; kill $etcd_pid $(cat "$dir/apiserver.pid") 2>/dev/null ) \
      > /dev/null 2>&1 &
  fi
  wait_ready $etcd_pid
  "$bin/kube-controller-manager" --kubeconfig "$dir/kubeconfig" --leader-elect=false --secure-port 0 \
    --controllers namespace-controller,garbage-collector-controller,serviceaccount-controller,clusterrole-aggregation-controller \
    --root-ca-file "$c/ca.crt" > "$dir/controller-manager.log" 2>&1 &
  local kcm_pid=$!
  echo "$etcd_pid $api_pid $kcm_pid" > "$dir/pids"
  if [ -n "${ECSRUN_CP_OWNER_PID:-}" ]; then
    ( while kill -0 "$ECSRUN_CP_OWNER_PID" 2>/dev/null; do sleep 1; done; kill $kcm_pid 2>/dev/null ) > /dev/null 2>&1 &
  fi
  sleep 0.5
  kill -0 $kcm_pid 2>/dev/null || { tail -20 "$dir/controller-manager.log" >&2; die "kube-controller-manager exited (log: $dir/controller-manager.log)"; }
  log "kube-apiserver and kube-controller-manager $(cat "$here/VERSION") ready on https://127.0.0.1:$api_port after $((SECONDS - start))s"
  env_
}

# Starts kube-apiserver in the background on the ports recorded in $dir; $! is its pid.
start_apiserver() {
  local c="$dir/pki" etcd_port api_port
  etcd_port=$(cat "$dir/etcd-port"); api_port=$(cat "$dir/port")
  local audit=()
  if [ -n "${ECSRUN_CP_AUDIT:-}" ]; then
    # Every write to an EcsTaskRun with its body and who sent it (hack/faults: what removed a run).
    cat > "$dir/audit-policy.yaml" <<'POLICY'
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Request
    verbs: [create, update, patch, delete, deletecollection]
    resources: [{group: ecsrun.dev, resources: [ecstaskruns, ecstaskruns/status]}]
  - level: None
POLICY
    audit=(--audit-policy-file "$dir/audit-policy.yaml" --audit-log-path "$dir/audit.log" --audit-log-maxsize 2000)
  fi
  "$bin/kube-apiserver" "${audit[@]}" --etcd-servers "http://127.0.0.1:$etcd_port" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$api_port" \
    --tls-cert-file "$c/apiserver.crt" --tls-private-key-file "$c/apiserver.key" --client-ca-file "$c/ca.crt" \
    --authorization-mode RBAC --disable-admission-plugins ServiceAccount --allow-privileged=true \
    --endpoint-reconciler-type none \
    --service-cluster-ip-range 10.0.0.0/24 --service-account-issuer https://kubernetes.default.svc \
    --service-account-key-file "$c/sa.pub" --service-account-signing-key-file "$c/sa.key" \
    --cert-dir "$dir/apiserver-certs" >> "$dir/apiserver.log" 2>&1 &
  echo $! > "$dir/apiserver.pid"
}

# Waits until kube-apiserver answers /readyz.
wait_ready() { # etcd pid
  local etcd_pid=$1 api_pid c="$dir/pki" api_port
  api_pid=$(cat "$dir/apiserver.pid"); api_port=$(cat "$dir/port")
  local deadline=$((SECONDS + 60))
  until curl -sf --cacert "$c/ca.crt" --cert "$c/admin.crt" --key "$c/admin.key" \
      "https://127.0.0.1:$api_port/readyz" > /dev/null 2>&1; do
    kill -0 $etcd_pid 2>/dev/null || { tail -20 "$dir/etcd.log" >&2; die "etcd exited (log: $dir/etcd.log)"; }
    kill -0 $api_pid 2>/dev/null || { tail -20 "$dir/apiserver.log" >&2; die "kube-apiserver exited (log: $dir/apiserver.log)"; }
    [ $SECONDS -lt $deadline ] || die "kube-apiserver not ready after 60s (log: $dir/apiserver.log)"
    sleep 0.3
  done
}

restart_apiserver() {
  running || die "not running"
  local old etcd_pid
  old=$(cat "$dir/apiserver.pid"); etcd_pid=$(cut -d' ' -f1 "$dir/pids")
  kill "$old"
  for _ in $(seq 100); do kill -0 "$old" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$old" 2>/dev/null || true
  local start=$SECONDS
  start_apiserver
  local api_pid=$!
  # The pids file keeps the new kube-apiserver, so `down` and the owner watch stop it.
  sed -i "s/\b$old\b/$api_pid/" "$dir/pids"
  wait_ready "$etcd_pid"
  log "kube-apiserver restarted, ready after $((SECONDS - start))s"
}

env_() {
  [ -f "$dir/kubeconfig" ] || die "not running (hack/controlplane/controlplane.sh up)"
  echo "export KUBECONFIG=$dir/kubeconfig"
}

down() {
  if [ -f "$dir/pids" ]; then
    # shellcheck disable=SC2046
    kill $(cat "$dir/pids") 2>/dev/null || true
    for _ in $(seq 50); do running || break; sleep 0.1; done
    # shellcheck disable=SC2046
    kill -9 $(cat "$dir/pids") 2>/dev/null || true
  fi
  # The audit log outlives the control plane, beside its state directory (hack/faults reads it).
  if [ -f "$dir/audit.log" ]; then mv "$dir/audit.log" "$(dirname "$dir")/apiserver-audit.log"; fi
  rm -rf "$dir"
  log "stopped"
}

case "${1:-}" in
  up) up ;;
  env) env_ ;;
  down) down ;;
  restart-apiserver) restart_apiserver ;;
  *) echo "usage: $0 up|env|down" >&2; exit 2 ;;
esac
