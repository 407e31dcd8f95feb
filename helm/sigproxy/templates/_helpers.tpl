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
{{- with include "sigproxy.redisFiles" . | fromYaml -}}
{{- $r := deepCopy (default dict $p.replay) -}}
{{- range $k, $f := . }}{{ $_ := set $r $k $f }}{{ end -}}
{{- $_ := set $p "replay" $r -}}
{{- end -}}
{{- with include "sigproxy.tlsSecretName" . -}}
{{- $dir := trimSuffix "/" $v.tls.mountPath -}}
{{- $t := dict "cert_file" (printf "%s/tls.crt" $dir) "key_file" (printf "%s/tls.key" $dir) -}}
{{- if $v.tls.clientAuth -}}
{{- $_ := set $t "client_ca_file" (printf "%s/ca.crt" $dir) -}}
{{- end -}}
{{- $_ := set $p "tls" $t -}}
{{- end -}}
{{- $u := default dict $v.upstreamTls -}}
{{- if or $u.caConfigMap $u.serverName -}}
{{- $ut := deepCopy (default dict $p.upstream_tls) -}}
{{- if $u.caConfigMap -}}
{{- $_ := set $ut "ca_file" (printf "%s/%s" (trimSuffix "/" $u.mountPath) $u.caKey) -}}
{{- end -}}
{{- with $u.serverName -}}
{{- $_ := set $ut "server_name" . -}}
{{- end -}}
{{- $_ := set $p "upstream_tls" $ut -}}
{{- end -}}
{{- toYaml $p -}}
{{- end -}}

{{/*
The policy keys for the files of replayStore.redis.existingSecret, as YAML (or nothing): each key
named in the values becomes <mountPath>/<key> under the matching policy.replay key.
*/}}
{{- define "sigproxy.redisFiles" -}}
{{- $r := .values.replayStore.redis -}}
{{- if $r.existingSecret -}}
{{- $dir := trimSuffix "/" $r.mountPath -}}
{{- $map := dict "redis_password_file" $r.passwordKey "redis_ca_file" $r.caKey "redis_client_cert_file" $r.clientCertKey "redis_client_key_file" $r.clientKeyKey -}}
{{- range $k := list "redis_password_file" "redis_ca_file" "redis_client_cert_file" "redis_client_key_file" }}
{{- with get $map $k }}
{{ $k }}: {{ printf "%s/%s" $dir . | quote }}
{{- end }}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
Issue 20: several pods with the per-process memory replay store accept a captured signed request
once per pod. Fails the render unless the store is shared or the user acknowledged it. The replica
count is known for the example Deployment (and its HPA); a parent chart that includes the sidecar
in its own pods is warned by NOTES.txt instead.
*/}}
{{- define "sigproxy.pods" -}}
{{- $v := .values -}}
{{- if and $v.deployment.enabled $v.autoscaling.enabled -}}
{{- printf "autoscaling (up to %v pods)" $v.autoscaling.maxReplicas -}}
{{- else if and $v.deployment.enabled (gt (int $v.deployment.replicas) 1) -}}
{{- printf "deployment.replicas: %v" $v.deployment.replicas -}}
{{- end -}}
{{- end -}}

{{- define "sigproxy.perPodReplay" -}}
{{- $p := default dict .values.policy -}}
{{- $store := (default dict $p.replay).store | default "memory" -}}
{{- $nonce := (default dict $p.signature).nonce | default "required" | toString -}}
{{- if and (eq $store "memory") (ne $nonce "off") -}}true{{- end -}}
{{- end -}}

{{- define "sigproxy.replayGuard" -}}
{{- $pods := include "sigproxy.pods" . -}}
{{- if and $pods (include "sigproxy.perPodReplay" .) (not .values.replayStore.acknowledgePerPodReplay) -}}
{{- fail (printf "\n\nsigproxy: %s with policy.replay.store: memory and nonces checked: each pod catches only the replays it saw itself, so a captured signed request is accepted once per pod.\nEither share the replay store: set policy.replay.store: redis and policy.replay.redis_url (or redis_cluster_nodes / redis_sentinels), with the password in a Secret (replayStore.redis.existingSecret);\nor accept per-pod replay protection explicitly: replayStore.acknowledgePerPodReplay: true.\n" $pods) -}}
{{- end -}}
{{- end -}}

{{/* The Secret (type kubernetes.io/tls) with the proxy listener's tls.crt / tls.key (and ca.crt
for client certificates), or "" when the listener is plain HTTP. */}}
{{- define "sigproxy.tlsSecretName" -}}
{{- $t := default dict .values.tls -}}
{{- if $t.enabled -}}
{{- required "tls.enabled: set tls.secretName (a kubernetes.io/tls Secret: tls.crt, tls.key; ca.crt with clientAuth)" $t.secretName -}}
{{- end -}}
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

{{/* An app probe: one that goes through the sidecar's proxy port speaks HTTPS when the listener
has TLS (the kubelet does not verify the certificate of an HTTPS probe). */}}
{{- define "sigproxy.appProbe" -}}
{{- $p := deepCopy .probe -}}
{{- if and .values.tls.enabled $p.httpGet (not $p.httpGet.scheme) (eq (toString $p.httpGet.port) (toString .values.ports.proxy)) -}}
{{- $_ := set $p.httpGet "scheme" "HTTPS" -}}
{{- end -}}
{{- toYaml $p -}}
{{- end -}}
