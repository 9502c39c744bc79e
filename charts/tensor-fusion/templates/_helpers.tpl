{{/* Names: with `helm install tensor-fusion-sys ...` every object is tensor-fusion-sys-<component>, as the docs use. */}}
{{- define "tf.fullname" -}}
{{- default .Release.Name .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- end -}}

{{- define "tf.labels" -}}
app.kubernetes.io/name: tensor-fusion
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* Selector labels of one component: include "tf.selector" (list $ "controller") */}}
{{- define "tf.selector" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: tensor-fusion
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "tf.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}

{{/* The environment every tensor-fusion container gets: log level per component, namespace. */}}
{{- define "tf.env" -}}
{{- $root := index . 0 -}}
{{- $component := index . 1 -}}
- name: TF_LOG_LEVEL
  value: {{ default $root.Values.logLevel (index $root.Values $component).logLevel | quote }}
- name: TF_LOG_FORMAT
  value: {{ $root.Values.logFormat | quote }}
- name: POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
{{- end -}}

{{/* Where metrics go: the standalone GreptimeDB, or the user's (Greptime Cloud, operator-managed). */}}
{{- define "tf.greptimeHost" -}}
{{- if .Values.greptime.installStandalone -}}
{{- printf "%s-greptime.%s.svc.cluster.local" (include "tf.fullname" .) .Release.Namespace -}}
{{- else -}}
{{- .Values.greptime.host -}}
{{- end -}}
{{- end -}}

{{- define "tf.greptimeSecretName" -}}
{{- default (printf "%s-greptime" (include "tf.fullname" .)) .Values.greptime.existingSecret -}}
{{- end -}}

{{/* True when a password is to be read from a Secret (the chart's or an existing one). */}}
{{- define "tf.greptimeHasPassword" -}}
{{- if or .Values.greptime.existingSecret .Values.greptime.password -}}true{{- end -}}
{{- end -}}

{{- define "tf.greptimeEnv" -}}
- name: TF_GREPTIME_HOST
  value: {{ include "tf.greptimeHost" . | quote }}
- name: TF_GREPTIME_PORT
  value: {{ .Values.greptime.port | quote }}
- name: TF_GREPTIME_DB
  value: {{ .Values.greptime.db | quote }}
- name: TF_GREPTIME_USER
  value: {{ .Values.greptime.user | quote }}
- name: TF_GREPTIME_IS_CLOUD
  value: {{ .Values.greptime.isCloud | quote }}
{{- if include "tf.greptimeHasPassword" . }}
- name: TF_GREPTIME_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "tf.greptimeSecretName" . }}
      key: {{ .Values.greptime.existingSecretKey }}
{{- end }}
{{- end -}}

{{- define "tf.alertManagerAddr" -}}
{{- printf "%s-alert-manager.%s.svc.cluster.local:9093" (include "tf.fullname" .) .Release.Namespace -}}
{{- end -}}

{{/* The controller's argv: controller.command verbatim when set (the spec's Option 1), else derived. */}}
{{- define "tf.controllerCommand" -}}
{{- if .Values.controller.command -}}
{{ toYaml .Values.controller.command }}
{{- else -}}
- /manager
- -metrics-bind-address
- {{ printf ":%d" (int .Values.controller.metricsPort) | quote }}
{{- if gt (int .Values.controller.replicaCount) 1 }}
- -leader-elect
{{- else if .Values.controller.leaderElect }}
- -leader-elect
{{- end }}
{{- if .Values.alert.enabled }}
- -enable-alert
- -alert-manager-addr
- {{ include "tf.alertManagerAddr" . }}
{{- end }}
{{- end -}}
{{- end -}}

{{- define "tf.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "tf.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
{{- end -}}

{{/* The controller's metrics/probe port: from -metrics-bind-address in controller.command when
     given there (any of Go's flag forms), else controller.metricsPort. */}}
{{- define "tf.controllerMetricsPort" -}}
{{- $port := int .Values.controller.metricsPort -}}
{{- $command := .Values.controller.command | default list -}}
{{- range $i, $arg := $command -}}
{{- $value := "" -}}
{{- if or (eq $arg "-metrics-bind-address") (eq $arg "--metrics-bind-address") -}}
{{- if lt (add1 $i) (len $command) -}}{{- $value = index $command (add1 $i) -}}{{- end -}}
{{- else if or (hasPrefix "-metrics-bind-address=" $arg) (hasPrefix "--metrics-bind-address=" $arg) -}}
{{- $value = regexReplaceAll "^-+metrics-bind-address=" $arg "" -}}
{{- end -}}
{{- if $value -}}
{{- $last := regexFind "[0-9]+$" $value -}}
{{- if or (eq $value "0") (not $last) -}}
{{- fail (printf "controller.command: -metrics-bind-address %q: the chart needs a port for the probes (like :9000)" $value) -}}
{{- end -}}
{{- $port = int $last -}}
{{- end -}}
{{- end -}}
{{- if and .Values.controller.adminApi.enabled (eq $port (int .Values.controller.adminApi.port)) -}}
{{- fail (printf "controller: the metrics port %d is also controller.adminApi.port; use another (the docs use :9000)" $port) -}}
{{- end -}}
{{- $port -}}
{{- end -}}

{{/*
The scheduler admin API's listener flags: the pod's loopback (kubectl port-forward reaches it)
unless exposed, and then only with a bearer token from a Secret; probes and metrics on their
own pod-IP port. Arguments: (list adminApiValues port healthPort valuesPath).
*/}}
{{- define "tf.adminApiArgs" -}}
{{- $api := index . 0 -}}
{{- $path := index . 3 -}}
- --host
- {{ if $api.expose }}0.0.0.0{{ else }}127.0.0.1{{ end }}
- --port
- {{ index . 1 | quote }}
- --health-host
- 0.0.0.0
- --health-port
- {{ index . 2 | quote }}
{{- if $api.expose }}
{{- if not $api.tokenSecret }}
{{- fail (printf "%s.adminApi.tokenSecret is required when %s.adminApi.expose is true (a Secret with key `token`)" $path $path) }}
{{- end }}
- --admin-token-file
- /etc/tensor-fusion-admin/token
{{- end }}
{{- end }}
