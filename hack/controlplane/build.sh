#!/usr/bin/env bash
# Builds kube-apiserver, kube-controller-manager, etcd, helm and promtool from the upstream Go modules pinned
# in go.mod into .cache/bin (cold: several minutes on 2 cores; afterwards a no-op).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
"$here/../gobuild" "$here" etcd go.etcd.io/etcd/server/v3
# Stamp the version as Kubernetes' own build does (hack/lib/version.sh): unstamped, kube-apiserver says
# v0.0.0-master, and clients that check it (helm's kubeVersion, kubectl's skew warning) refuse or warn.
version=$(cat "$here/VERSION")
minor=${version#v*.}; minor=${minor%%.*}
major=${version#v}; major=${major%%.*}
export GOBUILD_LDFLAGS="-X k8s.io/component-base/version.gitVersion=$version -X k8s.io/component-base/version.gitMajor=$major -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean -X k8s.io/client-go/pkg/version.gitVersion=$version -X k8s.io/client-go/pkg/version.gitMajor=$major -X k8s.io/client-go/pkg/version.gitMinor=$minor"
"$here/../gobuild" "$here" kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver
# Namespace deletion and owner-reference garbage collection happen in kube-controller-manager.
"$here/../gobuild" "$here" kube-controller-manager k8s.io/kubernetes/cmd/kube-controller-manager
unset GOBUILD_LDFLAGS
# helm (the chart's e2e cases, hack/release) and promtool (the chart's alerts, checked and unit-tested in
# the e2e case monitoring::...) from this module: most of the libraries they import are the control
# plane's, already compiled. promtool without its service discoveries (remove_all_sd): they are most of
# Prometheus' build and its rule checks need none.
"$here/../gobuild" "$here" helm helm.sh/helm/v4/cmd/helm
GOBUILD_TAGS=remove_all_sd "$here/../gobuild" "$here" promtool github.com/prometheus/prometheus/cmd/promtool
