{{/* Labels every resource of one service carries. */}}
{{- define "medassist.labels" -}}
app.kubernetes.io/name: {{ .name }}
app.kubernetes.io/part-of: medassist
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/version: {{ .root.Values.image.tag | quote }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{- end -}}

{{- define "medassist.selector" -}}
app.kubernetes.io/name: {{ .name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- end -}}

{{/* Environment shared by a service's Deployment and its migration Job. */}}
{{- define "medassist.env" -}}
- {name: ENVIRONMENT, value: {{ .root.Values.environment | quote }}}
- {name: HTTP_HOST, value: "0.0.0.0"}
- {name: HTTP_PORT, value: {{ .svc.port | quote }}}
- {name: KAFKA_BOOTSTRAP_SERVERS, value: {{ printf "%s-kafka-bootstrap:9092" .root.Values.kafka.cluster | quote }}}
- {name: PG_HOST, value: {{ printf "%s-db-rw" .name | quote }}}
- {name: PG_PORT, value: "5432"}
- {name: DATABASE_NAME, value: {{ .name | quote }}}
- {name: PG_APP_USER, value: {{ printf "%s_app" .name | quote }}}
- name: PG_APP_PASSWORD
  valueFrom: {secretKeyRef: {name: {{ printf "%s-db-app" .name }}, key: password}}
{{- if not .owner }}
# Serving needs no owner: the owner's settings name the runtime role, so the owner's password stays in the Job.
- {name: PG_USER, value: {{ printf "%s_app" .name | quote }}}
- name: PG_PASSWORD
  valueFrom: {secretKeyRef: {name: {{ printf "%s-db-app" .name }}, key: password}}
{{- end }}
# Staff tokens are verified with the identity provider's keys (no shared JWT secret in production).
- {name: JWT_JWKS_URL, value: {{ .root.Values.identityProvider.jwksUrl | quote }}}
- {name: JWT_ISSUER, value: {{ .root.Values.identityProvider.issuer | quote }}}
- {name: JWT_AUDIENCE, value: {{ .root.Values.identityProvider.audience | quote }}}
- {name: OTEL_EXPORTER_OTLP_ENDPOINT, value: {{ .root.Values.tracing.otlpEndpoint | quote }}}
# The production sampler (docs/decisions/0029): a share of new traces, plus every error and slow entry span.
- {name: OTEL_TRACES_SAMPLER, value: parentbased_traceidratio}
- {name: OTEL_TRACES_SAMPLER_ARG, value: {{ .root.Values.tracing.ratio | quote }}}
- {name: TRACES_KEEP_SLOW_MS, value: {{ .root.Values.tracing.keepSlowMs | quote }}}
- {name: TRACES_KEEP_MAX_PER_S, value: {{ .root.Values.tracing.keepMaxPerSecond | quote }}}
{{- range $key := list "PERSON_REF_PEPPER" "FIELD_KEYS" "PAYEE_KEYS" "CASE_VIEW_KEYS" "CONTACT_KEYS" }}
- name: {{ $key }}
  valueFrom: {secretKeyRef: {name: {{ $.root.Values.secrets.app }}, key: {{ $key }}}}
{{- end }}
{{- if eq .name "intake" }}
- name: HOSPITAL_SECRETS
  valueFrom: {secretKeyRef: {name: {{ .root.Values.secrets.app }}, key: HOSPITAL_SECRETS}}
{{- end }}
{{- if .svc.bankPeer }}
- {name: BANK_BASE_URL, value: {{ .root.Values.bank.baseUrl | quote }}}
- {name: CALLBACK_BASE_URL, value: {{ .root.Values.bank.callbackBaseUrl | quote }}}
- name: BANK_CALLBACK_SECRET
  valueFrom: {secretKeyRef: {name: {{ .root.Values.secrets.app }}, key: BANK_CALLBACK_SECRET}}
{{- end }}
{{- if .svc.smsPeer }}
- {name: SMS_BASE_URL, value: {{ .root.Values.sms.baseUrl | quote }}}
- {name: SMS_CALLBACK_BASE_URL, value: {{ .root.Values.sms.callbackBaseUrl | quote }}}
- name: SMS_CALLBACK_SECRET
  valueFrom: {secretKeyRef: {name: {{ .root.Values.secrets.app }}, key: SMS_CALLBACK_SECRET}}
{{- end }}
{{- end -}}

{{- define "medassist.securityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
runAsUser: 65534
capabilities: {drop: [ALL]}
seccompProfile: {type: RuntimeDefault}
{{- end -}}
