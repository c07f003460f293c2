#!/usr/bin/env bash
# Builds kube-apiserver, kube-controller-manager and etcd from the upstream Go modules pinned in go.mod into .cache/bin
# (cold: several minutes on 2 cores; afterwards a no-op).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
"$here/../gobuild" "$here" etcd go.etcd.io/etcd/server/v3
"$here/../gobuild" "$here" kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver
# Namespace deletion and owner-reference garbage collection happen in kube-controller-manager.
"$here/../gobuild" "$here" kube-controller-manager k8s.io/kubernetes/cmd/kube-controller-manager
