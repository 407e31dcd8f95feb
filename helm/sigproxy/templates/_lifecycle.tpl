{{/*
Pod lifecycle: where the sidecar goes (a classic `containers` entry, or a native sidecar in
`initContainers` with `restartPolicy: Always`, Kubernetes >= 1.29) and the termination timing,
derived from the policy's drain_delay_seconds (D) and shutdown_grace_seconds (G). It renders no
object; deployment.yaml and your own pod spec include these. Every helper takes
(dict "root" $ "values" <sigproxy values>), as in _helpers.tpl.

On SIGTERM the proxy answers /readyz 503, keeps serving for D seconds while the endpoint leaves
the Service, then stops accepting and finishes in-flight requests within G. The legacy app must
keep serving while the proxy still forwards to it: its preStop sleep S holds it up.
  classic: proxy and app get SIGTERM together; the proxy forwards until D + G at the latest,
           so S = D + G and the pod needs max(S, D + G) + margin.
  native:  the app gets SIGTERM first and the proxy only once the app has exited, so S = D
           covers the drain and the pod needs S + D + G + margin.
*/}}

{{/* An integer policy key as the binary reads it: absent or null = its default; 0 is a value. */}}
{{- define "sigproxy.policyInt" -}}
{{- $p := default dict .values.policy -}}
{{- if and (hasKey $p .key) (not (kindIs "invalid" (get $p .key))) -}}{{ int (get $p .key) }}
{{- else -}}{{ .default }}
{{- end -}}
{{- end -}}

{{- define "sigproxy.drainDelaySeconds" -}}
{{- include "sigproxy.policyInt" (dict "values" .values "key" "drain_delay_seconds" "default" 5) -}}
{{- end -}}

{{- define "sigproxy.shutdownGraceSeconds" -}}
{{- include "sigproxy.policyInt" (dict "values" .values "key" "shutdown_grace_seconds" "default" 10) -}}
{{- end -}}

{{/* The preStop `sleep` action of the app container needs Kubernetes >= 1.30 (beta, on). */}}
{{- define "sigproxy.appPreStopSleepSeconds" -}}
{{- $v := .values -}}
{{- $s := $v.termination.appPreStopSleepSeconds -}}
{{- $sleepOk := semverCompare ">=1.30-0" .root.Capabilities.KubeVersion.Version -}}
{{- if kindIs "invalid" $s -}}
{{- if not $sleepOk -}}0
{{- else if $v.sidecar.native -}}{{ include "sigproxy.drainDelaySeconds" . }}
{{- else -}}{{ add (include "sigproxy.drainDelaySeconds" . | int) (include "sigproxy.shutdownGraceSeconds" . | int) }}
{{- end -}}
{{- else if and (gt (int $s) 0) (not $sleepOk) -}}
{{- fail (printf "termination.appPreStopSleepSeconds=%d renders a preStop sleep action, which needs Kubernetes >= 1.30 (this is %s): set it to 0 and make the app wait on SIGTERM itself" (int $s) .root.Capabilities.KubeVersion.Version) -}}
{{- else -}}{{ int $s }}
{{- end -}}
{{- end -}}

{{/* The app container's `lifecycle` (a preStop sleep), or nothing. */}}
{{- define "sigproxy.appLifecycle" -}}
{{- $s := include "sigproxy.appPreStopSleepSeconds" . | int -}}
{{- if gt $s 0 -}}
preStop:
  sleep: { seconds: {{ $s }} }
{{- end -}}
{{- end -}}

{{/* The pod's terminationGracePeriodSeconds: computed, or the explicit value if it is enough. */}}
{{- define "sigproxy.terminationGracePeriodSeconds" -}}
{{- $v := .values -}}
{{- $d := include "sigproxy.drainDelaySeconds" . | int -}}
{{- $g := include "sigproxy.shutdownGraceSeconds" . | int -}}
{{- $s := include "sigproxy.appPreStopSleepSeconds" . | int -}}
{{- $m := int $v.termination.marginSeconds -}}
{{- $min := 0 -}}
{{- $why := "" -}}
{{- if $v.sidecar.native -}}
{{- $min = add $s $d $g $m -}}
{{- $why = printf "app preStop sleep %d + policy.drain_delay_seconds %d + policy.shutdown_grace_seconds %d + termination.marginSeconds %d (native sidecar: the proxy drains after the app has exited)" $s $d $g $m -}}
{{- else -}}
{{- $min = add (max $s (add $d $g)) $m -}}
{{- $why = printf "max(app preStop sleep %d, policy.drain_delay_seconds %d + policy.shutdown_grace_seconds %d) + termination.marginSeconds %d" $s $d $g $m -}}
{{- end -}}
{{- $t := $v.termination.gracePeriodSeconds -}}
{{- if kindIs "invalid" $t -}}{{ $min }}
{{- else if lt (int $t) (int $min) -}}
{{- fail (printf "termination.gracePeriodSeconds=%d is shorter than the shutdown it must cover: %s = %d. Raise it, lower those, or leave it null to have it computed" (int $t) $why (int $min)) -}}
{{- else -}}{{ int $t }}
{{- end -}}
{{- end -}}

{{/* The sidecar as a native sidecar (initContainers entry), when sidecar.native; else nothing. */}}
{{- define "sigproxy.initContainers" -}}
{{- if .values.sidecar.native -}}
{{- if semverCompare "<1.29-0" .root.Capabilities.KubeVersion.Version -}}
{{- fail (printf "sidecar.native needs Kubernetes >= 1.29 (initContainers with restartPolicy: Always); this is %s: set sidecar.native=false" .root.Capabilities.KubeVersion.Version) -}}
{{- end -}}
{{- include "sigproxy.container" (dict "root" .root "values" .values "native" true) -}}
{{- end -}}
{{- end -}}

{{/* The sidecar as a classic `containers` entry, unless sidecar.native; else nothing. */}}
{{- define "sigproxy.containers" -}}
{{- if not .values.sidecar.native -}}
{{- include "sigproxy.container" . -}}
{{- end -}}
{{- end -}}
