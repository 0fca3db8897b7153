{{/*
certmint's configuration file (`certmint serve --config`). Keys are the binary's
snake_case contract; values come from the chart's camelCase values.
*/}}
{{- define "certmint.config" -}}
listen: {{ printf "0.0.0.0:%d" (int .Values.ports.grpc) | quote }}
admin_listen: {{ printf "0.0.0.0:%d" (int .Values.ports.admin) | quote }}
trust_domain: {{ .Values.trustDomain | quote }}
control_namespace: {{ .Values.controlNamespace | quote }}
log_format: {{ .Values.log.format | quote }}
issuance:
  lifetime: {{ .Values.issuance.lifetime | quote }}
  clock_skew: {{ .Values.issuance.clockSkew | quote }}
issuer:
  source: kubernetes
  dir: /var/run/certmint/issuer  # unused with source kubernetes
  namespace: {{ .Release.Namespace | quote }}
  secret: {{ .Values.issuer.secretName | quote }}
  reload_interval: {{ .Values.issuer.reloadInterval | quote }}
trust_anchors:
  source: kubernetes
  file: /var/run/certmint/anchors/ca-bundle.crt  # unused with source kubernetes
  namespace: {{ .Release.Namespace | quote }}
  configmap: {{ .Values.trustAnchors.configMapName | quote }}
  key: {{ .Values.trustAnchors.key | quote }}
  reload_interval: {{ .Values.trustAnchors.reloadInterval | quote }}
authn:
  mode: {{ .Values.authn.mode | quote }}
  audiences: {{ .Values.authn.audiences | toJson }}
  jwt:
    keys: {{ .Values.authn.jwt.keys | toJson }}
    issuers: {{ .Values.authn.jwt.issuers | toJson }}
  kubernetes:
    legacy_fallback: {{ .Values.authn.kubernetes.legacyFallback }}
    cache_ttl: {{ .Values.authn.kubernetes.cacheTTL | quote }}
    cache_size: {{ int .Values.authn.kubernetes.cacheSize }}
    max_in_flight: {{ int .Values.authn.kubernetes.maxInFlight }}
    qps: {{ int .Values.authn.kubernetes.qps }}
    burst: {{ int .Values.authn.kubernetes.burst }}
    timeout: {{ .Values.authn.kubernetes.timeout | quote }}
    local_verification: {{ .Values.authn.kubernetes.localVerification | quote }}
    {{- with .Values.authn.kubernetes.issuer }}
    issuer: {{ . | quote }}
    {{- end }}
    max_token_lifetime: {{ .Values.authn.kubernetes.maxTokenLifetime | quote }}
    token_clock_skew: {{ .Values.authn.kubernetes.tokenClockSkew | quote }}
    key_refresh_interval: {{ .Values.authn.kubernetes.keyRefreshInterval | quote }}
tls:
  enabled: {{ .Values.tls.enabled }}
  server_name: {{ include "certmint.serverName" . | quote }}
  extra_names: {{ include "certmint.istioServerNames" . }}
istio:
  enabled: {{ .Values.istio.enabled }}
  audiences: {{ .Values.istio.audiences | toJson }}
  cluster_ids: {{ .Values.istio.clusterIds | toJson }}
  trusted_node_accounts: {{ .Values.istio.trustedNodeAccounts | toJson }}
limits:
  request_timeout: {{ .Values.limits.requestTimeout | quote }}
  max_message_size: {{ int .Values.limits.maxMessageSize }}
  max_concurrent_streams: {{ int .Values.limits.maxConcurrentStreams }}
  keepalive_interval: {{ .Values.limits.keepaliveInterval | quote }}
  keepalive_timeout: {{ .Values.limits.keepaliveTimeout | quote }}
  shutdown_grace: {{ .Values.limits.shutdownGrace | quote }}
  handshake_timeout: {{ .Values.limits.handshakeTimeout | quote }}
  preface_timeout: {{ .Values.limits.prefaceTimeout | quote }}
  max_connections: {{ int .Values.limits.maxConnections }}
  max_header_list_size: {{ int .Values.limits.maxHeaderListSize }}
rotation:
  interlock: {{ .Values.rotation.interlock }}
  trust_configmaps: {{ .Values.rotation.trustConfigMaps | toJson }}
{{- if .Values.podCertificates.enabled }}
pod_certificates:
  enabled: true
  signer_name: {{ .Values.podCertificates.signerName | quote }}
  pod_wait: {{ .Values.podCertificates.podWait | quote }}
  write_qps: {{ int .Values.podCertificates.writeQps }}
  write_burst: {{ int .Values.podCertificates.writeBurst }}
  claim_stagger: {{ .Values.podCertificates.claimStagger | quote }}
  publish_trust_bundle: {{ .Values.podCertificates.publishTrustBundle }}
  api_version: {{ .Values.podCertificates.apiVersion | quote }}
{{- end }}
{{- if .Values.hsm.enabled }}
hsm:
  module: {{ .Values.hsm.module | quote }}
  pin_file: /var/run/certmint/hsm-pin/pin
  sessions: {{ int .Values.hsm.sessions }}
{{- end }}
audit:
  enabled: {{ .Values.audit.enabled }}
  on_failure: {{ .Values.audit.onFailure | quote }}
  stdout: {{ .Values.audit.stdout }}
  {{- if .Values.audit.file.enabled }}
  file:
    path: /var/lib/certmint/audit/{replica}/audit.jsonl
    max_size: {{ int .Values.audit.file.maxSize }}
    keep: {{ int .Values.audit.file.keep }}
  {{- end }}
  checkpoint:
    interval: {{ .Values.audit.checkpoint.interval | quote }}
    records: {{ int .Values.audit.checkpoint.records }}
    {{- if .Values.audit.checkpoint.keySecret }}
    key: /var/run/certmint/audit-key/tls.key
    {{- end }}
{{- end }}
