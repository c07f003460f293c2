{{- define "ecsrun.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "ecsrun.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "ecsrun.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "ecsrun.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "ecsrun.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ecsrun.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "ecsrun.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "ecsrun.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Namespaces whose Secrets secretRef credentials may read. */}}
{{- define "ecsrun.secretNamespaces" -}}
{{- $namespaces := .Values.credentials.secretRef.namespaces | default .Values.watchNamespaces }}
{{- if and .Values.credentials.secretRef.enabled (empty $namespaces) }}
{{- fail "credentials.secretRef.enabled needs credentials.secretRef.namespaces (or watchNamespaces): the controller never reads Secrets cluster-wide" }}
{{- end }}
{{- toJson $namespaces }}
{{- end }}

{{/* What the controller does with runs, wherever it watches them. */}}
{{- define "ecsrun.runRules" }}
# Watch runs, add and remove the finalizer, delete finished runs past their ttlSecondsAfterFinished;
# create the runs of schedules' slots, delete those replaced or past the history limits.
- apiGroups: ["ecsrun.dev"]
  resources: ["ecstaskruns"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
# Watch schedules; their status by server-side apply.
- apiGroups: ["ecsrun.dev"]
  resources: ["ecstaskschedules"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["ecsrun.dev"]
  resources: ["ecstaskschedules/status"]
  verbs: ["patch"]
# Owner references that block the owner's deletion, where OwnerReferencesPermissionEnforcement is on.
- apiGroups: ["ecsrun.dev"]
  resources: ["ecstaskschedules/finalizers"]
  verbs: ["update"]
# Status by server-side apply.
- apiGroups: ["ecsrun.dev"]
  resources: ["ecstaskruns/status"]
  verbs: ["patch"]
# Setting finalizers where OwnerReferencesPermissionEnforcement is on.
- apiGroups: ["ecsrun.dev"]
  resources: ["ecstaskruns/finalizers"]
  verbs: ["update"]
# Events on runs.
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- if .Values.kueue.enabled }}
# Queued runs' Workloads: created, watched, kept active as spec.suspend says; their status written as
# Kueue's job integrations write it (quota given back after an eviction, Finished when the run ends).
- apiGroups: ["kueue.x-k8s.io"]
  resources: ["workloads"]
  verbs: ["get", "list", "watch", "create", "patch"]
- apiGroups: ["kueue.x-k8s.io"]
  resources: ["workloads/status"]
  verbs: ["get", "update"]
{{- end }}
{{- if .Values.tekton.enabled }}
# Tekton's CustomRuns naming EcsTaskRun: watched, each run as an EcsTaskRun it owns, its status written
# (Succeeded, results) by server-side apply.
- apiGroups: ["tekton.dev"]
  resources: ["customruns"]
  verbs: ["list", "watch"]
- apiGroups: ["tekton.dev"]
  resources: ["customruns/status"]
  verbs: ["patch"]
{{- end }}
{{- end }}

{{/*
The controller image: by digest when one is given, else by tag (the chart's appVersion by default).
*/}}
{{- define "ecsrun.image" -}}
{{- $repository := required "image.repository is required: no ecsrun image is published yet. Build one from the repository's Dockerfile, push it to a registry the cluster pulls from (or load it: kind load docker-image, minikube image load), and install with --set image.repository=<registry>/ecsrun-controller. See charts/ecsrun/README.md, \"Installing\"." .Values.image.repository -}}
{{- if .Values.image.digest -}}
{{ $repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ $repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
{{- end }}
