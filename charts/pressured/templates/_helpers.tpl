{{/* The chart name, overridable. */}}
{{- define "pressured.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The fully qualified app name (release-name-chart unless the release already contains it). */}}
{{- define "pressured.fullname" -}}
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

{{- define "pressured.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "pressured.selectorLabels" -}}
app.kubernetes.io/name: {{ include "pressured.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "pressured.labels" -}}
helm.sh/chart: {{ include "pressured.chart" . }}
{{ include "pressured.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: {{ .Values.mode }}
{{- end }}

{{- define "pressured.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "pressured.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "pressured.image" -}}
{{- $tag := .Values.image.tag | default .Chart.AppVersion -}}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}

{{/* Fails on an unknown mode or backend, early and with the key at fault. */}}
{{- define "pressured.validate" -}}
{{- if not (has .Values.mode (list "node" "cluster" "sidecar")) }}
{{- fail (printf "mode: %q is not one of node, cluster, sidecar" .Values.mode) }}
{{- end }}
{{- if not (has .Values.storage.backend (list "local" "s3")) }}
{{- fail (printf "storage.backend: %q is not one of local, s3" .Values.storage.backend) }}
{{- end }}
{{- if and .Values.storage.enabled (eq .Values.storage.backend "s3") (not .Values.storage.s3.bucket) }}
{{- fail "storage.s3.bucket is required when storage.backend is s3" }}
{{- end }}
{{- if and .Values.lua.enabled (not (or .Values.lua.inlineScript .Values.lua.scripts .Values.lua.existingConfigMap)) }}
{{- fail "lua.enabled needs lua.scripts, lua.existingConfigMap or lua.inlineScript" }}
{{- end }}
{{- end }}

{{/* Whether the Deployment elects a leader through a Lease. */}}
{{- define "pressured.leaderElection" -}}
{{- $le := .Values.leaderElection.enabled -}}
{{- if and (eq .Values.mode "cluster") (or (eq (toString $le) "true") (and (eq (toString $le) "auto") (gt (int .Values.replicaCount) 1))) -}}
true
{{- end -}}
{{- end }}

{{- define "pressured.leaseName" -}}
{{- default (include "pressured.fullname" .) .Values.leaderElection.leaseName }}
{{- end }}

{{/*
The JSON configuration: `config` with source.mode from `mode`, source.cgroup.path from the node mount,
source.kubelet.leader_election from `leaderElection`, kubernetes.events from `kubeEvents`,
plugins.lua from `lua` and storage from `storage`. Keys are pressured's (pressure-core's and
pressure-actions' sections); it rejects unknown ones.
*/}}
{{- define "pressured.config" -}}
{{- $cfg := deepCopy (.Values.config | default dict) -}}
{{- $source := deepCopy (get $cfg "source" | default dict) -}}
{{- $modes := dict "node" "node" "cluster" "kubelet" "sidecar" "cgroup" -}}
{{- $_ := set $source "mode" (get $modes .Values.mode) -}}
{{- if eq .Values.mode "node" -}}
{{- $cgroup := deepCopy (get $source "cgroup" | default dict) -}}
{{- $_ := set $cgroup "path" .Values.node.cgroupMountPath -}}
{{- $_ := set $source "cgroup" $cgroup -}}
{{- end -}}
{{- if include "pressured.leaderElection" . -}}
{{- /* Leader election: one Lease in the release namespace, held by POD_NAME (README, cluster mode). */ -}}
{{- $kubelet := deepCopy (get $source "kubelet" | default dict) -}}
{{- $le := dict "enabled" true "lease_name" (include "pressured.leaseName" .) "lease_namespace" .Release.Namespace -}}
{{- $_ := set $kubelet "leader_election" (merge $le (get $kubelet "leader_election" | default dict)) -}}
{{- $_ := set $source "kubelet" $kubelet -}}
{{- end -}}
{{- $_ := set $cfg "source" $source -}}
{{- if not .Values.kubeEvents -}}
{{- $kubernetes := deepCopy (get $cfg "kubernetes" | default dict) -}}
{{- $_ := set $kubernetes "events" false -}}
{{- $_ := set $cfg "kubernetes" $kubernetes -}}
{{- end -}}
{{- if .Values.lua.enabled -}}
{{- $lua := dict "enabled" true "timeout_ms" (int .Values.lua.timeoutMs) -}}
{{- if .Values.lua.inlineScript -}}
{{- $_ := set $lua "inline_script" .Values.lua.inlineScript -}}
{{- else -}}
{{- $_ := set $lua "scripts_dir" .Values.lua.scriptsDir -}}
{{- end -}}
{{- $plugins := deepCopy (get $cfg "plugins" | default dict) -}}
{{- $_ := set $plugins "lua" (merge $lua (get $plugins "lua" | default dict)) -}}
{{- $_ := set $cfg "plugins" $plugins -}}
{{- end -}}
{{- if .Values.storage.enabled -}}
{{- $storage := dict "enabled" true "backend" .Values.storage.backend -}}
{{- if eq .Values.storage.backend "local" -}}
{{- $_ := set $storage "path" .Values.storage.local.path -}}
{{- else -}}
{{- $s3 := dict "bucket" .Values.storage.s3.bucket "path_style" .Values.storage.s3.pathStyle -}}
{{- range $k, $v := dict "region" .Values.storage.s3.region "prefix" .Values.storage.s3.prefix "endpoint" .Values.storage.s3.endpoint -}}
{{- if $v }}{{ $_ := set $s3 $k $v }}{{ end -}}
{{- end -}}
{{- $_ := set $storage "s3" $s3 -}}
{{- end -}}
{{- $_ := set $cfg "storage" $storage -}}
{{- end -}}
{{- toPrettyJson $cfg -}}
{{- end }}

{{/* Downward-API environment: who the pod is (pressured and the Lease holder identity read these). */}}
{{- define "pressured.downwardEnv" -}}
- name: NODE_NAME
  valueFrom:
    fieldRef:
      fieldPath: spec.nodeName
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
- name: POD_UID
  valueFrom:
    fieldRef:
      fieldPath: metadata.uid
- name: POD_IP
  valueFrom:
    fieldRef:
      fieldPath: status.podIP
{{- end }}
