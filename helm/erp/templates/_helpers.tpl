{{/* Names, labels and the pieces every erp container shares. */}}

{{- define "erp.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "erp.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "erp.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* selectorLabels: (dict "ctx" $ "component" "api") */}}
{{- define "erp.selectorLabels" -}}
app.kubernetes.io/name: {{ include "erp.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "erp.labels" -}}
helm.sh/chart: {{ include "erp.chart" .ctx }}
{{ include "erp.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: erp
{{- end -}}

{{- define "erp.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "erp.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "erp.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{/* checkov skips: (list "CKV_K8S_43=reason" ...) as checkov.io/skipN annotations. */}}
{{- define "erp.checkovSkips" -}}
{{- range $i, $skip := . }}
checkov.io/skip{{ add1 $i }}: {{ $skip | quote }}
{{- end }}
{{- end -}}

{{/* The settings as env entries, for the pre-install Job (the ConfigMap is not there yet). */}}
{{- define "erp.settings" -}}
{{- $out := dict -}}
{{- range $name, $value := .Values.config -}}
{{- $text := include "erp.text" $value -}}
{{- if ne $text "" -}}
{{- $_ := set $out $name $text -}}
{{- end -}}
{{- end -}}
{{- if .Values.pgbouncer.enabled -}}
{{- $_ := set $out "DB_PREPARE_THRESHOLD" "none" -}}
{{- end -}}
{{- range $name, $value := .Values.extraEnv -}}
{{- $_ := set $out $name (include "erp.text" $value) -}}
{{- end -}}
{{- toYaml $out -}}
{{- end -}}

{{/* A value as an environment variable's text: numbers from YAML arrive as floats
     (10485760 would print as 1.048576e+07), integers are written as integers. */}}
{{- define "erp.text" -}}
{{- if or (kindIs "float64" .) (kindIs "int64" .) (kindIs "int" .) -}}
{{- . | int64 | toString -}}
{{- else -}}
{{- toString . -}}
{{- end -}}
{{- end -}}

{{- define "erp.settingsEnv" -}}
{{- range $name, $value := (include "erp.settings" . | fromYaml) }}
- name: {{ $name }}
  value: {{ $value | quote }}
{{- end }}
{{- end -}}

{{/* secretEnv: (dict "ctx" $ "vars" (list "DATABASE_URL" ...)); a var whose key is "" is left out.
     "DATABASE_URL" is pgbouncer's URL when pooled is true. */}}
{{- define "erp.secretEnv" -}}
{{- $v := .ctx.Values -}}
{{- $keys := $v.secrets.keys -}}
{{- $pooled := and .pooled $v.pgbouncer.enabled -}}
{{- range $name := .vars }}
{{- $key := get $keys $name -}}
{{- if and (eq $name "DATABASE_URL") $pooled -}}
{{- $key = $keys.POOLED_DATABASE_URL -}}
{{- end -}}
{{- if and (eq $name "LISTEN_DATABASE_URL") $pooled (not $key) -}}
{{- $key = $keys.DATABASE_URL -}}
{{- end -}}
{{- if $key }}
- name: {{ $name }}
  valueFrom:
    secretKeyRef:
      name: {{ $v.secrets.existingSecret }}
      key: {{ $key }}
{{- end -}}
{{- end }}
{{- end -}}

{{- define "erp.runtimeSecrets" -}}
{{- list "DATABASE_URL" "LISTEN_DATABASE_URL" "REDIS_URL" "SECRET_KEY" "ENCRYPTION_KEYS" "OIDC_ISSUER" "OIDC_CLIENT_ID" "OIDC_CLIENT_SECRET" "SMTP_URL" | toJson -}}
{{- end -}}

{{/* The pod spec lines every erp pod shares. */}}
{{- define "erp.podCommon" -}}
serviceAccountName: {{ include "erp.serviceAccountName" . }}
automountServiceAccountToken: false
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
volumes:
  - name: tmp
    emptyDir:
      sizeLimit: 256Mi
{{- end -}}

{{/* topologySpread: (dict "ctx" $ "component" "api") */}}
{{- define "erp.topologySpread" -}}
{{- $t := .ctx.Values.topologySpread -}}
{{- if $t.enabled }}
topologySpreadConstraints:
{{- range $key := $t.topologyKeys }}
  - maxSkew: {{ $t.maxSkew }}
    topologyKey: {{ $key }}
    whenUnsatisfiable: {{ $t.whenUnsatisfiable }}
    labelSelector:
      matchLabels:
        {{- include "erp.selectorLabels" $ | nindent 8 }}
{{- end }}
{{- end }}
{{- end -}}

{{/* The container lines every erp container shares. */}}
{{- define "erp.containerCommon" -}}
image: {{ include "erp.image" . }}
imagePullPolicy: {{ .Values.image.pullPolicy }}
securityContext:
  {{- toYaml .Values.securityContext | nindent 2 }}
volumeMounts:
  - name: tmp
    mountPath: /tmp
{{- end -}}

{{/* Pod annotations: the settings' checksum rolls every pod when a setting changes. */}}
{{- define "erp.podAnnotations" -}}
checksum/config: {{ include "erp.settings" . | sha256sum }}
{{- with .Values.podAnnotations }}
{{ toYaml . }}
{{- end }}
{{- end -}}
