{{/* Chart name, truncated to the DNS label limit. */}}
{{- define "certmint.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name. */}}
{{- define "certmint.fullname" -}}
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

{{/* Name for cluster-scoped objects: unique per namespace and release. */}}
{{- define "certmint.clusterName" -}}
{{- printf "%s-%s" .Release.Namespace (include "certmint.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "certmint.headlessName" -}}
{{- printf "%s-headless" (include "certmint.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "certmint.configName" -}}
{{- printf "%s-config" (include "certmint.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "certmint.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "certmint.selectorLabels" -}}
app.kubernetes.io/name: {{ include "certmint.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "certmint.labels" -}}
helm.sh/chart: {{ include "certmint.chart" . }}
{{ include "certmint.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: identity
app.kubernetes.io/part-of: certmint
{{- end }}

{{- define "certmint.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "certmint.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create=false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "certmint.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The identity certmint serves TLS as (its own Linkerd-style identity name). */}}
{{- define "certmint.serverName" -}}
{{- if .Values.tls.serverName }}
{{- .Values.tls.serverName }}
{{- else }}
{{- printf "%s.%s.serviceaccount.identity.%s.%s" (include "certmint.serviceAccountName" .) .Release.Namespace .Values.controlNamespace .Values.trustDomain }}
{{- end }}
{{- end }}

{{/*
Whole seconds of a duration string "N(ms|s|m|h)" (rounded up), e.g. for
terminationGracePeriodSeconds.
*/}}
{{- define "certmint.durationSeconds" -}}
{{- $d := toString . }}
{{- if not (regexMatch "^[0-9]+(ms|s|m|h)$" $d) }}
{{- fail (printf "invalid duration %q: use a whole number with ms, s, m or h (e.g. 25s)" $d) }}
{{- end }}
{{- $n := regexFind "^[0-9]+" $d | atoi }}
{{- $unit := regexReplaceAll "^[0-9]+" $d "" }}
{{- if eq $unit "h" }}{{ mul $n 3600 }}
{{- else if eq $unit "m" }}{{ mul $n 60 }}
{{- else if eq $unit "s" }}{{ $n }}
{{- else }}{{ div (add $n 999) 1000 }}
{{- end }}
{{- end }}

{{- define "certmint.terminationGracePeriodSeconds" -}}
{{- $grace := include "certmint.durationSeconds" .Values.limits.shutdownGrace | atoi }}
{{- $t := int .Values.terminationGracePeriodSeconds }}
{{- if eq $t 0 }}
{{- add $grace 10 }}
{{- else if le $t $grace }}
{{- fail (printf "terminationGracePeriodSeconds (%d) must be greater than limits.shutdownGrace (%ds)" $t $grace) }}
{{- else }}
{{- $t }}
{{- end }}
{{- end }}

{{/* Label matchers used by every alert expression. */}}
{{- define "certmint.alertSelector" -}}
{{- default (printf "namespace=%q" .Release.Namespace) .Values.monitoring.prometheusRule.selector }}
{{- end }}

{{/* Fail early on value combinations that cannot work. */}}
{{- define "certmint.validate" -}}
{{- if and (not .Values.issuer.external) (or (not .Values.issuer.crtPEM) (not .Values.issuer.keyPEM)) }}
{{- fail "issuer.external=false needs issuer.crtPEM and issuer.keyPEM (or set issuer.external=true and create the Secret yourself / with cert-manager)" }}
{{- end }}
{{- if and .Values.issuer.certManager.enabled (not .Values.issuer.external) }}
{{- fail "issuer.certManager.enabled=true needs issuer.external=true (cert-manager owns the issuer Secret)" }}
{{- end }}
{{- if and .Values.issuer.certManager.enabled (not .Values.issuer.certManager.issuerRef.name) }}
{{- fail "issuer.certManager.issuerRef.name is required when issuer.certManager.enabled=true" }}
{{- end }}
{{- if and (eq .Values.authn.mode "jwt") (or (empty .Values.authn.jwt.keys) (empty .Values.authn.jwt.issuers)) }}
{{- fail "authn.mode=jwt needs authn.jwt.keys and authn.jwt.issuers" }}
{{- end }}
{{- end }}

{{/* The names Istio's clients dial, for the serving certificate (JSON list; empty when the
Istio API is off). */}}
{{- define "certmint.istioServerNames" -}}
{{- if not .Values.istio.enabled }}
{{- list | toJson }}
{{- else if .Values.istio.serverNames }}
{{- .Values.istio.serverNames | toJson }}
{{- else }}
{{- $svc := printf "%s.%s.svc" (include "certmint.fullname" .) .Release.Namespace }}
{{- list $svc (printf "%s.cluster.local" $svc) | toJson }}
{{- end }}
{{- end }}

{{/* Impersonation is on: Istio enabled with trusted node accounts (needs a pods watch). */}}
{{- define "certmint.istioImpersonation" -}}
{{- if and .Values.istio.enabled .Values.istio.trustedNodeAccounts }}true{{ end }}
{{- end }}
