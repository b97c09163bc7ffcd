{{- define "oom-tracer.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The fully qualified app name (release-name-chart unless the release already contains it). */}}
{{- define "oom-tracer.fullname" -}}
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

{{- define "oom-tracer.selectorLabels" -}}
app.kubernetes.io/name: {{ include "oom-tracer.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "oom-tracer.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "oom-tracer.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "oom-tracer.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "oom-tracer.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The flags; the annotation is left out entirely in dry run (the original rendered `""` and crashed). */}}
{{- define "oom-tracer.args" -}}
{{- $annotation := trim (toString .Values.victimAnnotation) -}}
{{- if and $annotation (not .Values.dryRun) }}
{{- if not (regexMatch "^[^=\\s]+=[^\\s]*$" $annotation) }}
{{- fail (printf "victimAnnotation: %q is not key=value" $annotation) }}
{{- end }}
- {{ printf "--victim_annotation=%s" $annotation | quote }}
{{- end }}
{{- if not (has .Values.annotateKills (list "global" "all")) }}
{{- fail (printf "annotateKills: %q is not global or all" .Values.annotateKills) }}
{{- end }}
- {{ printf "--annotate-kills=%s" .Values.annotateKills | quote }}
- {{ printf "--kube_client_qps=%v" .Values.kubeClient.qps | quote }}
- {{ printf "--kube_client_burst=%v" .Values.kubeClient.burst | quote }}
{{- if .Values.metrics.enabled }}
- {{ printf "--metrics_bind_address=%s:%d" .Values.metrics.host (int .Values.metrics.port) | quote }}
{{- else }}
- --metrics_bind_address=
{{- end }}
{{- if .Values.kmsg.only }}
- --kmsg-only
{{- end }}
- {{ printf "--pending-marks-max-age=%v" .Values.pendingMarks.maxAge | quote }}
- {{ printf "--pending-marks-capacity=%v" (int .Values.pendingMarks.capacity) | quote }}
{{- if .Values.pendingMarks.hostPath }}
- --state-file=/var/lib/oom-tracer/pending-marks.json
{{- else }}
- --state-file=
{{- end }}
{{- end }}
