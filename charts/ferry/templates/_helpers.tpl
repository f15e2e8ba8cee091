{{/* Names and labels shared by every object of the release. */}}
{{- define "ferry.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "ferry.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "ferry.selector" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "ferry.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "ferry.sshSecret" -}}
{{- .Values.ssh.existingSecret | default (printf "%s-ssh" (include "ferry.fullname" .)) -}}
{{- end -}}

{{- define "ferry.redisSecret" -}}
{{ include "ferry.fullname" . }}-redis
{{- end -}}

{{/* Where the work bus is: the bundled Redis (its password comes from a Secret, see redis.yaml) or an external one. */}}
{{- define "ferry.redisEnv" -}}
{{- if .Values.redis.enabled }}
- name: REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "ferry.redisSecret" . }}
      key: redis-password
- name: FERRY_REDIS_URL
  value: {{ printf "redis://:$(REDIS_PASSWORD)@%s-redis.%s.svc:6379/0" (include "ferry.fullname" .) .Release.Namespace | quote }}
{{- else }}
- name: FERRY_REDIS_URL
  value: {{ required "redis.externalUrl is required when redis.enabled is false" .Values.redis.externalUrl | quote }}
{{- end }}
{{- end -}}

{{/* The restricted pod security profile, for everything but the privileged agent. */}}
{{- define "ferry.restrictedContainer" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}
