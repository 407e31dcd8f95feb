{{/*
The sigproxy sidecar, for your own pod spec. Call with (dict "root" $ "values" .Values.sigproxy)
from a parent chart (or "values" .Values inside this chart); each renders a YAML list item.

  spec:
    terminationGracePeriodSeconds: {{ include "sigproxy.terminationGracePeriodSeconds" (dict "root" $ "values" .Values.sigproxy) }}
    {{- with include "sigproxy.initContainers" (dict "root" $ "values" .Values.sigproxy) }}
    initContainers:
      {{- . | nindent 6 }}
    {{- end }}
    containers:
      - name: my-app           # listen on 127.0.0.1 only: the sidecar is the way in
        {{- with include "sigproxy.appLifecycle" (dict "root" $ "values" .Values.sigproxy) }}
        lifecycle:
          {{- . | nindent 10 }}
        {{- end }}
        …
      {{- include "sigproxy.containers" (dict "root" $ "values" .Values.sigproxy) | nindent 6 }}
    volumes:
      {{- include "sigproxy.volumes" (dict "root" $ "values" .Values.sigproxy) | nindent 6 }}

The policy ConfigMap is mounted as a directory (never subPath: a subPath mount never sees the
kubelet's updates, and the live overrides are files beside policy.yaml); so is the TLS Secret
(values `tls`), whose renewals reload without a restart.
"sigproxy.containers" / "sigproxy.initContainers" (_lifecycle.tpl) place it by sidecar.native;
"sigproxy.container" is the classic entry alone.
*/}}
{{- define "sigproxy.container" -}}
{{- $v := .values -}}
{{- if and $v.sidecar.native (not .native) -}}
{{- fail "sidecar.native is true: include \"sigproxy.initContainers\" under initContainers and \"sigproxy.containers\" under containers (not \"sigproxy.container\")" -}}
{{- end -}}
- name: {{ $v.sidecar.name }}
  {{- if .native }}
  restartPolicy: Always
  {{- end }}
  image: {{ include "sigproxy.image" . | quote }}
  imagePullPolicy: {{ $v.image.pullPolicy }}
  args: ["run", "--config", {{ printf "%s/policy.yaml" (trimSuffix "/" $v.configMap.mountPath) | quote }}]
  ports:
    - { name: http, containerPort: {{ $v.ports.proxy }}, protocol: TCP }
    - { name: admin, containerPort: {{ $v.ports.admin }}, protocol: TCP }
  {{- if or $v.sidecar.logLevel $v.sidecar.env }}
  env:
    {{- with $v.sidecar.logLevel }}
    - { name: SIGPROXY_LOG, value: {{ . | quote }} }
    {{- end }}
    {{- with $v.sidecar.env }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- end }}
  {{- with $v.sidecar.livenessProbe }}
  livenessProbe:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.sidecar.readinessProbe }}
  readinessProbe:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.sidecar.startupProbe }}
  startupProbe:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  resources:
    {{- toYaml $v.sidecar.resources | nindent 4 }}
  securityContext:
    {{- toYaml $v.sidecar.securityContext | nindent 4 }}
  volumeMounts:
    - { name: sigproxy-config, mountPath: {{ $v.configMap.mountPath | quote }}, readOnly: true }
    {{- if include "sigproxy.keysSecretName" . }}
    - { name: sigproxy-keys, mountPath: {{ $v.keys.mountPath | quote }}, readOnly: true }
    {{- end }}
    {{- if .values.replayStore.redis.existingSecret }}
    - { name: sigproxy-redis, mountPath: {{ .values.replayStore.redis.mountPath | quote }}, readOnly: true }
    {{- end }}
    {{- if include "sigproxy.tlsSecretName" . }}
    - { name: sigproxy-tls, mountPath: {{ $v.tls.mountPath | quote }}, readOnly: true }
    {{- end }}
    {{- if (default dict $v.upstreamTls).caConfigMap }}
    - { name: sigproxy-upstream-ca, mountPath: {{ $v.upstreamTls.mountPath | quote }}, readOnly: true }
    {{- end }}
    - { name: sigproxy-tmp, mountPath: /tmp }
{{- end -}}

{{- define "sigproxy.volumes" -}}
- name: sigproxy-config
  configMap:
    name: {{ include "sigproxy.configMapName" . }}
{{- with include "sigproxy.keysSecretName" . }}
- name: sigproxy-keys
  secret:
    secretName: {{ . }}
    defaultMode: 0444   # public keys; readable whatever the pod's fsGroup
{{- end }}
{{- with .values.replayStore.redis.existingSecret }}
- name: sigproxy-redis
  secret:
    secretName: {{ . }}
    defaultMode: 0444   # readable by the sidecar whatever the pod's fsGroup; only the sidecar mounts it
{{- end }}
{{- with include "sigproxy.tlsSecretName" . }}
# The listener's certificate and key, mounted as a directory (never subPath): cert-manager's
# renewals reach the files through the kubelet's ..data swap and sigproxy reloads them live.
- name: sigproxy-tls
  secret:
    secretName: {{ . }}
    defaultMode: 0444   # readable by the sidecar whatever the pod's fsGroup; only the sidecar mounts it
{{- end }}
{{- with (default dict .values.upstreamTls).caConfigMap }}
# The CA bundle an https:// upstream is verified against (a trust-manager Bundle, say); a new
# bundle applies without a restart.
- name: sigproxy-upstream-ca
  configMap:
    name: {{ . }}
{{- end }}
- name: sigproxy-tmp
  emptyDir: { medium: Memory, sizeLimit: 16Mi }
{{- end -}}
