{{/*
Names and labels. Every helper takes (dict "root" $ "values" <sigproxy values>) so that it works
both inside this chart and from a parent chart that includes the sidecar in its own pod spec
(there `.Values.sigproxy` holds this chart's values). The name does not use .Chart.Name, which
is the parent's name in a parent's context.
*/}}
{{- define "sigproxy.fullname" -}}
{{- $v := .values -}}
{{- if $v.fullnameOverride -}}
{{- $v.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default "sigproxy" $v.nameOverride -}}
{{- if contains $name .root.Release.Name -}}
{{- .root.Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .root.Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "sigproxy.configMapName" -}}
{{- default (printf "%s-config" (include "sigproxy.fullname" .)) .values.configMap.name -}}
{{- end -}}

{{- define "sigproxy.keysSecretName" -}}
{{- if .values.keys.existingSecret -}}
{{- .values.keys.existingSecret -}}
{{- else if .values.keys.files -}}
{{- printf "%s-keys" (include "sigproxy.fullname" .) -}}
{{- end -}}
{{- end -}}

{{- define "sigproxy.selectorLabels" -}}
app.kubernetes.io/name: {{ default "sigproxy" .values.nameOverride }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- end -}}

{{- define "sigproxy.labels" -}}
{{ include "sigproxy.selectorLabels" . }}
app.kubernetes.io/version: {{ (default .root.Chart.AppVersion .values.image.tag) | toString | trunc 63 | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" | trunc 63 }}
{{- end -}}

{{- define "sigproxy.image" -}}
{{- if .values.image.digest -}}
{{- printf "%s@%s" .values.image.repository .values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .values.image.repository (default .root.Chart.AppVersion .values.image.tag | toString) -}}
{{- end -}}
{{- end -}}

{{/*
The policy file: .values.policy with listen/admin_listen/upstream from the chart's values and
the keys Secret's mount prepended to key_files.
*/}}
{{- define "sigproxy.policy" -}}
{{- $v := .values -}}
{{- $p := deepCopy (default dict $v.policy) -}}
{{- $_ := set $p "listen" (printf "0.0.0.0:%v" $v.ports.proxy) -}}
{{- $_ := set $p "admin_listen" (printf "0.0.0.0:%v" $v.ports.admin) -}}
{{- $_ := set $p "upstream" $v.upstream -}}
{{- if include "sigproxy.keysSecretName" . -}}
{{- $kf := list (printf "%s/*.yaml" (trimSuffix "/" $v.keys.mountPath)) -}}
{{- $_ := set $p "key_files" (concat $kf (default list $p.key_files) | uniq) -}}
{{- end -}}
{{- toYaml $p -}}
{{- end -}}

{{/* The live override keys that are set (docs/reference.md §3.7), as ConfigMap data lines (or
    nothing). */}}
{{- define "sigproxy.overrides" -}}
{{- $o := default dict .values.overrides -}}
{{- $map := dict "mode" "SIGNATURE_AUTH_MODE" "required" "SIGNATURE_AUTH_REQUIRED" "canaryPercent" "SIGNATURE_AUTH_CANARY_PERCENT" "dryRun" "SIGNATURE_AUTH_DRY_RUN" -}}
{{- $lines := list -}}
{{- range $k := list "mode" "required" "canaryPercent" "dryRun" -}}
{{- if and (hasKey $o $k) (not (kindIs "invalid" (get $o $k))) -}}
{{- $lines = append $lines (printf "%s: %s" (get $map $k) (get $o $k | toString | quote)) -}}
{{- end -}}
{{- end -}}
{{- join "\n" $lines -}}
{{- end -}}
