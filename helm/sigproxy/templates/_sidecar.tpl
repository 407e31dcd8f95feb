{{/*
The sigproxy sidecar, for your own pod spec. Call with (dict "root" $ "values" .Values.sigproxy)
from a parent chart (or "values" .Values inside this chart); each renders a YAML list item.

  spec:
    containers:
      - name: my-app           # listen on 127.0.0.1 only: the sidecar is the way in
        …
      {{- include "sigproxy.container" (dict "root" $ "values" .Values.sigproxy) | nindent 6 }}
    volumes:
      {{- include "sigproxy.volumes" (dict "root" $ "values" .Values.sigproxy) | nindent 6 }}

The policy ConfigMap is mounted as a directory (never subPath: a subPath mount never sees the
kubelet's updates, and the live overrides are files beside policy.yaml).
*/}}
{{- define "sigproxy.container" -}}
{{- $v := .values -}}
- name: {{ $v.sidecar.name }}
  image: {{ include "sigproxy.image" . | quote }}
  imagePullPolicy: {{ $v.image.pullPolicy }}
  args: ["run", "--config", {{ printf "%s/policy.yaml" (trimSuffix "/" $v.configMap.mountPath) | quote }}]
  ports:
    - { name: http, containerPort: {{ $v.ports.proxy }}, protocol: TCP }
    - { name: admin, containerPort: {{ $v.ports.admin }}, protocol: TCP }
  env:
    - { name: RUST_LOG, value: {{ $v.sidecar.logLevel | quote }} }
    {{- with $v.sidecar.env }}
    {{- toYaml . | nindent 4 }}
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
- name: sigproxy-tmp
  emptyDir: { medium: Memory, sizeLimit: 16Mi }
{{- end -}}
