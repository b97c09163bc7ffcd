{{/* The pod template shared by the node DaemonSet and the cluster Deployment. */}}
{{- define "pressured.podTemplate" -}}
metadata:
  annotations:
    checksum/config: {{ include "pressured.config" . | sha256sum }}
    {{- if and .Values.lua.enabled .Values.lua.scripts }}
    checksum/lua-scripts: {{ toJson .Values.lua.scripts | sha256sum }}
    {{- end }}
    {{- with .Values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  labels:
    {{- include "pressured.labels" . | nindent 4 }}
    {{- with .Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  serviceAccountName: {{ include "pressured.serviceAccountName" . }}
  automountServiceAccountToken: {{ .Values.serviceAccount.automountServiceAccountToken }}
  {{- with .Values.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  securityContext:
    {{- toYaml .Values.podSecurityContext | nindent 4 }}
  terminationGracePeriodSeconds: 15
  containers:
    - name: pressured
      image: {{ include "pressured.image" . | quote }}
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      args:
        - -c
        - /etc/pressured/config.json
        {{- if .Values.http.enabled }}
        - {{ printf "--metrics-bind-address=:%d" (int .Values.http.port) | quote }}
        {{- end }}
        {{- with .Values.extraArgs }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      env:
        {{- include "pressured.downwardEnv" . | nindent 8 }}
        {{- if and .Values.storage.enabled (eq .Values.storage.backend "s3") }}
        {{- with .Values.storage.s3.region }}
        - name: AWS_REGION
          value: {{ . | quote }}
        {{- end }}
        {{- if .Values.storage.s3.existingSecret }}
        - name: AWS_ACCESS_KEY_ID
          valueFrom:
            secretKeyRef:
              name: {{ .Values.storage.s3.existingSecret }}
              key: {{ .Values.storage.s3.accessKeyIdKey }}
        - name: AWS_SECRET_ACCESS_KEY
          valueFrom:
            secretKeyRef:
              name: {{ .Values.storage.s3.existingSecret }}
              key: {{ .Values.storage.s3.secretAccessKeyKey }}
        {{- end }}
        {{- end }}
        {{- with .Values.extraEnvVars }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- if .Values.http.enabled }}
      ports:
        - name: http
          containerPort: {{ .Values.http.port }}
          protocol: TCP
      {{- if .Values.livenessProbe.enabled }}
      livenessProbe:
        {{- toYaml (merge (dict "httpGet" (dict "port" "http")) (omit .Values.livenessProbe "enabled")) | nindent 8 }}
      {{- end }}
      {{- if .Values.readinessProbe.enabled }}
      readinessProbe:
        {{- toYaml (merge (dict "httpGet" (dict "port" "http")) (omit .Values.readinessProbe "enabled")) | nindent 8 }}
      {{- end }}
      {{- end }}
      resources:
        {{- toYaml .Values.resources | nindent 8 }}
      securityContext:
        {{- toYaml .Values.securityContext | nindent 8 }}
      volumeMounts:
        - name: config
          mountPath: /etc/pressured/config.json
          subPath: config.json
          readOnly: true
        - name: tmp
          mountPath: /tmp
        {{- if eq .Values.mode "node" }}
        # The host's cgroups (every pod of the node), read-only; HostToContainer sees cgroup v1
        # hierarchies mounted after the pod started.
        - name: host-cgroup
          mountPath: {{ .Values.node.cgroupMountPath }}
          readOnly: true
          mountPropagation: HostToContainer
        {{- end }}
        {{- if and .Values.lua.enabled (not .Values.lua.inlineScript) }}
        - name: lua-scripts
          mountPath: {{ .Values.lua.scriptsDir }}
          readOnly: true
        {{- end }}
        {{- if and .Values.storage.enabled (eq .Values.storage.backend "local") }}
        - name: data
          mountPath: {{ .Values.storage.local.path }}
        {{- end }}
        {{- with .Values.extraVolumeMounts }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
  volumes:
    - name: config
      configMap:
        name: {{ include "pressured.fullname" . }}
    - name: tmp
      emptyDir:
        sizeLimit: 64Mi
    {{- if eq .Values.mode "node" }}
    - name: host-cgroup
      hostPath:
        path: /sys/fs/cgroup
        type: Directory
    {{- end }}
    {{- if and .Values.lua.enabled (not .Values.lua.inlineScript) }}
    - name: lua-scripts
      configMap:
        name: {{ .Values.lua.existingConfigMap | default (printf "%s-lua" (include "pressured.fullname" .)) }}
    {{- end }}
    {{- if and .Values.storage.enabled (eq .Values.storage.backend "local") }}
    - name: data
      {{- if and (eq .Values.mode "cluster") .Values.persistence.enabled }}
      persistentVolumeClaim:
        claimName: {{ .Values.persistence.existingClaim | default (include "pressured.fullname" .) }}
      {{- else if and (eq .Values.mode "node") .Values.persistence.hostPath }}
      hostPath:
        path: {{ .Values.persistence.hostPath }}
        type: DirectoryOrCreate
      {{- else }}
      emptyDir: {}
      {{- end }}
    {{- end }}
    {{- with .Values.extraVolumes }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.topologySpreadConstraints }}
  topologySpreadConstraints:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
