{{/* Names and labels. */}}
{{- define "leakhub.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "leakhub.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "leakhub.labels" -}}
{{ include "leakhub.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Component labels: include "leakhub.componentLabels" (list $ "web") */}}
{{- define "leakhub.componentLabels" -}}
{{ include "leakhub.labels" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}
{{- define "leakhub.componentSelector" -}}
{{ include "leakhub.selectorLabels" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "leakhub.image" -}}
{{- $tag := .Values.image.tag | default .Chart.AppVersion -}}
{{- if or (eq $tag "latest") (eq $tag "") -}}
{{- fail "image.tag must name a release (never `latest`)" -}}
{{- end -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}

{{- define "leakhub.hostname" -}}
{{- required "hostname is required: the public name users open (https://<hostname>/)" .Values.hostname -}}
{{- end -}}

{{/* Object names of the parts. */}}
{{- define "leakhub.keycloakName" -}}{{ include "leakhub.fullname" . }}-keycloak{{- end -}}
{{- define "leakhub.pgClusterName" -}}{{ include "leakhub.fullname" . }}-pg{{- end -}}
{{- define "leakhub.appSecret" -}}{{ .Values.secrets.app.existingSecret | default (printf "%s-app" (include "leakhub.fullname" .)) }}{{- end -}}
{{- define "leakhub.kcBootstrapSecret" -}}{{ .Values.secrets.keycloakBootstrap.existingSecret | default (printf "%s-keycloak-bootstrap" (include "leakhub.fullname" .)) }}{{- end -}}
{{- define "leakhub.backupIdentitySecret" -}}{{ required "secrets.backupIdentity.existingSecret is required when backup.enabled: a Secret with key backup-identity (an age identity; docs/scale-out.md)" .Values.secrets.backupIdentity.existingSecret }}{{- end -}}
{{- define "leakhub.uploadsClaim" -}}{{ .Values.uploads.existingClaim | default (printf "%s-uploads" (include "leakhub.fullname" .)) }}{{- end -}}
{{- define "leakhub.backupClaim" -}}{{ .Values.backup.existingClaim | default (printf "%s-backups" (include "leakhub.fullname" .)) }}{{- end -}}
{{- define "leakhub.keycloakUrl" -}}http://{{ include "leakhub.keycloakName" . }}-service:8080/auth{{- end -}}

{{/* Database: host, and (secret, key) of each role's password. */}}
{{- define "leakhub.dbHost" -}}
{{- if .Values.externalDatabase.enabled -}}
{{- required "externalDatabase.host is required" .Values.externalDatabase.host -}}
{{- else -}}
{{- include "leakhub.pgClusterName" . }}-rw
{{- end -}}
{{- end -}}
{{- define "leakhub.dbPort" -}}{{ if .Values.externalDatabase.enabled }}{{ .Values.externalDatabase.port }}{{ else }}5432{{ end }}{{- end -}}
{{- define "leakhub.dbName" -}}{{ if .Values.externalDatabase.enabled }}{{ .Values.externalDatabase.leakhubDatabase }}{{ else }}leakhub{{ end }}{{- end -}}
{{- define "leakhub.dbUser" -}}{{ if .Values.externalDatabase.enabled }}{{ .Values.externalDatabase.leakhubUser }}{{ else }}leakhub{{ end }}{{- end -}}
{{- define "leakhub.kcDbName" -}}{{ if .Values.externalDatabase.enabled }}{{ .Values.externalDatabase.keycloakDatabase }}{{ else }}keycloak{{ end }}{{- end -}}
{{- define "leakhub.kcDbUser" -}}{{ if .Values.externalDatabase.enabled }}{{ .Values.externalDatabase.keycloakUser }}{{ else }}keycloak{{ end }}{{- end -}}
{{- define "leakhub.dbSuperuser" -}}{{ if .Values.externalDatabase.enabled }}{{ .Values.externalDatabase.superuser }}{{ else }}postgres{{ end }}{{- end -}}
{{- define "leakhub.externalDbSecret" -}}{{ required "externalDatabase.existingSecret is required (keys leakhub-password, keycloak-password, superuser-password)" .Values.externalDatabase.existingSecret }}{{- end -}}

{{/* A projected-volume source for one database password, as the secret file NAME. */}}
{{- define "leakhub.dbPasswordSource" -}}
{{- $root := index . 0 -}}{{- $role := index . 1 -}}
- secret:
    {{- if $root.Values.externalDatabase.enabled }}
    name: {{ include "leakhub.externalDbSecret" $root }}
    items:
      - key: {{ $role }}-password
        path: postgres-{{ $role }}-password
    {{- else }}
    name: {{ include "leakhub.fullname" $root }}-db-{{ $role }}
    items:
      - key: password
        path: postgres-{{ $role }}-password
    {{- end }}
{{- end -}}

{{/* The restricted Pod Security profile. */}}
{{- define "leakhub.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end -}}
{{- define "leakhub.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Environment shared by web, worker and the Jobs (compose's x-app-environment). */}}
{{- define "leakhub.appEnv" -}}
- name: LEAKHUB_HOME
  value: /var/lib/leakhub
- name: LEAKHUB_PUBLIC_URL
  value: https://{{ include "leakhub.hostname" . }}
- name: LEAKHUB_INTERNAL_URL
  value: http://{{ include "leakhub.fullname" . }}-web:8000
- name: DATABASE_URL
  value: postgresql://{{ include "leakhub.dbUser" . }}@{{ include "leakhub.dbHost" . }}:{{ include "leakhub.dbPort" . }}/{{ include "leakhub.dbName" . }}
- name: LEAKHUB_DATA_DIR
  value: /var/lib/leakhub/data
- name: LEAKHUB_SECRETS_DIR
  value: /run/leakhub-secrets
- name: LEAKHUB_BACKUP_DIR
  value: /var/lib/leakhub/backups
# Encryption at rest of uploads and secret files (docs/encryption.md) is off on Kubernetes for
# now: its key ring is written into LEAKHUB_SECRETS_DIR at first use, and here that directory is
# a read-only projection of Kubernetes Secrets shared by many pods. Use an encrypted
# StorageClass (and etcd encryption for Secrets) until the key ring can live in a Secret.
- name: LEAKHUB_DATA_KEY_FILE
  value: "off"
- name: LEAKHUB_REALM_TEMPLATE
  value: /app/compose/realm-template.json
- name: KEYCLOAK_URL
  value: {{ include "leakhub.keycloakUrl" . }}
- name: KC_BOOTSTRAP_ADMIN_CLIENT_ID
  value: leakhub-bootstrap
- name: LEAKHUB_ADMIN_EMAIL
  value: {{ required "organization.adminEmail is required (the first administrator)" .Values.organization.adminEmail | quote }}
- name: LEAKHUB_ORG_SLUG
  value: {{ .Values.organization.slug | quote }}
- name: LEAKHUB_ORG_NAME
  value: {{ .Values.organization.name | quote }}
- name: LEAKHUB_ADMIN_ALLOW
  value: {{ .Values.allowList.admin | quote }}
- name: LEAKHUB_BIND
  value: 0.0.0.0:8000
- name: LEAKHUB_METRICS_BIND
  value: 0.0.0.0:9464
- name: LEAKHUB_KEYCLOAK_DATABASE
  value: {{ include "leakhub.kcDbName" . | quote }}
- name: LEAKHUB_KEYCLOAK_DB_USER
  value: {{ include "leakhub.kcDbUser" . | quote }}
- name: LEAKHUB_POSTGRES_SUPERUSER
  value: {{ include "leakhub.dbSuperuser" . | quote }}
{{- with .Values.smtp }}
{{- if .host }}
- name: LEAKHUB_SMTP_HOST
  value: {{ .host | quote }}
- name: LEAKHUB_SMTP_PORT
  value: {{ .port | quote }}
- name: LEAKHUB_SMTP_FROM
  value: {{ .from | quote }}
- name: LEAKHUB_SMTP_USER
  value: {{ .user | quote }}
- name: LEAKHUB_SMTP_STARTTLS
  value: {{ .starttls | quote }}
{{- end }}
{{- end }}
{{- if .Values.backup.recipients }}
- name: LEAKHUB_BACKUP_RECIPIENTS
  value: {{ .Values.backup.recipients | quote }}
{{- end }}
{{- end -}}

{{/* Pod-level pieces every Leakhub pod shares. */}}
{{- define "leakhub.podCommon" -}}
automountServiceAccountToken: false
securityContext:
  {{- include "leakhub.podSecurityContext" . | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}
