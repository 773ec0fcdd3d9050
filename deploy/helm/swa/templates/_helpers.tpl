{{/* Names, labels and the pieces every pod shares. */}}

{{- define "swa.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "swa.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "swa.selector" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "swa.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The Secret every component reads its secrets from. */}}
{{- define "swa.secretName" -}}
{{- if .Values.secrets.existingSecret -}}
{{- .Values.secrets.existingSecret -}}
{{- else -}}
{{- printf "%s-secrets" (include "swa.fullname" .) -}}
{{- end -}}
{{- end -}}

{{- define "swa.checkSecrets" -}}
{{- $n := 0 -}}
{{- if .Values.secrets.existingSecret }}{{ $n = add1 $n }}{{ end -}}
{{- if .Values.secrets.create }}{{ $n = add1 $n }}{{ end -}}
{{- if .Values.externalSecrets.enabled }}{{ $n = add1 $n }}{{ end -}}
{{- if ne $n 1 -}}
{{- fail "set exactly one of secrets.existingSecret, secrets.create and externalSecrets.enabled" -}}
{{- end -}}
{{- if and .Values.externalSecrets.enabled (not .Values.externalSecrets.secretStoreRef.name) -}}
{{- fail "externalSecrets.secretStoreRef.name is required" -}}
{{- end -}}
{{- end -}}

{{- define "swa.secretEnv" -}}
- name: {{ .env }}
  valueFrom:
    secretKeyRef:
      name: {{ include "swa.secretName" .root }}
      key: {{ .key }}
{{- end -}}

{{/* Settings both planes read; secrets come from the Secret. */}}
{{- define "swa.commonEnv" -}}
- name: SWA_ENV
  value: {{ .Values.env | quote }}
- name: SWA_LOG_FORMAT
  value: json
- name: SWA_LOG_LEVEL
  value: {{ .Values.logLevel | quote }}
- name: SWA_BASE_DOMAIN
  value: {{ .Values.baseDomain | quote }}
{{- with .Values.platformSite.hosts }}
- name: SWA_PLATFORM_HOSTS
  value: {{ . | quote }}
{{- end }}
- name: SWA_REQUEST_TIMEOUT
  value: {{ .Values.requestTimeout | quote }}
- name: SWA_TENANT_DB_PREFIX
  value: {{ .Values.tenantDB.prefix | quote }}
- name: SWA_SECRETS_BACKEND
  value: {{ .Values.secretsBackend | quote }}
{{- if eq .Values.secretsBackend "aws" }}
- name: SWA_AWS_SECRETS_PREFIX
  value: {{ .Values.aws.secretsPrefix | quote }}
{{- with .Values.aws.region }}
- name: AWS_REGION
  value: {{ . | quote }}
{{- end }}
{{- else }}
{{ include "swa.secretEnv" (dict "root" . "env" "SWA_MASTER_KEY" "key" "master-key") }}
{{- end }}
{{ include "swa.secretEnv" (dict "root" . "env" "SWA_REDIS_URL" "key" "redis-url") }}
{{- end -}}

{{/* What the control plane and the migration job need beyond commonEnv. */}}
{{- define "swa.controlEnv" -}}
{{ include "swa.secretEnv" (dict "root" . "env" "SWA_PLATFORM_DATABASE_URL" "key" "platform-database-url") }}
{{ include "swa.secretEnv" (dict "root" . "env" "SWA_TENANT_DB_ADMIN_URL" "key" "tenant-db-admin-url") }}
{{- with .Values.tenantDB.host }}
- name: SWA_TENANT_DB_HOST
  value: {{ . | quote }}
{{- end }}
{{- end -}}

{{- define "swa.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "swa.securityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
runAsNonRoot: true
capabilities:
  drop: ["ALL"]
{{- end -}}
