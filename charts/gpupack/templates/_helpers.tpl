{{/* Labels Helm adds to every object (test/manifests ignores these when it compares with manifests/). */}}
{{- define "gpupack.helmLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}

{{/* Labels of every object: gpupack's and Helm's. */}}
{{- define "gpupack.labels" -}}
app.kubernetes.io/part-of: gpupack
{{ include "gpupack.helmLabels" . }}
{{- end }}

{{/* image IMAGE ROOT PATH: the image reference, the chart's appVersion by default (PATH: the values' key, for errors). */}}
{{- define "gpupack.image" -}}
{{- $tag := .image.tag | default .root.Chart.AppVersion -}}
{{- if eq $tag "latest" -}}
{{- fail "image tag \"latest\" is not allowed: the device plugin and the scheduler must agree on the protocol version; pin a release" -}}
{{- end -}}
{{- if not (regexMatch `^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$` (toString $tag)) -}}
{{- fail (printf "%s.tag %q: want an image tag (letters, digits, '_', '.', '-'; at most 128 characters), or empty for the chart's appVersion" .path (toString $tag)) -}}
{{- end -}}
{{- $repo := .image.repository | default "" | toString -}}
{{- if not (regexMatch `^[^\s:@]+(:[0-9]+)?(/[^\s:@]+)*$` $repo) -}}
{{- fail (printf "%s.repository %q: want an image repository without tag or digest, such as ghcr.io/org/image (the tag is %s.tag)" .path $repo .path) -}}
{{- end -}}
{{- printf "%s:%s" $repo $tag -}}
{{- end }}

{{/* The scheduler's namespace. */}}
{{- define "gpupack.schedulerNamespace" -}}
{{- .Values.scheduler.namespace | default .Release.Namespace -}}
{{- end }}

{{/* The device plugin's ServiceAccount name (node-patch-policy.yaml matches it by name). */}}
{{- define "gpupack.devicePluginSA" -}}gpupack-device-plugin{{- end }}

{{/* devicePlugin.migMonitor CONFIG: "true" when the DaemonSet running CONFIG monitors MIG devices. */}}
{{- define "gpupack.migMonitor" -}}
{{- $v := .root.Values.devicePlugin.migMonitorDevices -}}
{{- if eq (toString $v) "auto" -}}
{{- $strategy := "none" -}}
{{- if kindIs "map" .config }}{{ with .config.flags }}{{ with .migStrategy }}{{ $strategy = . }}{{ end }}{{ end }}{{ end -}}
{{- if ne $strategy "none" }}true{{ end -}}
{{- else if eq (toString $v) "true" -}}
true
{{- else if ne (toString $v) "false" -}}
{{- fail (printf "devicePlugin.migMonitorDevices: want auto, true or false, got %v" $v) -}}
{{- end -}}
{{- end }}

{{/* devicePlugin.mps CONFIG: "true" when the DaemonSet running CONFIG runs MPS control daemons (sharing.mps with resources). */}}
{{- define "gpupack.mps" -}}
{{- $v := .root.Values.devicePlugin.mps.enabled -}}
{{- if eq (toString $v) "auto" -}}
{{- if kindIs "map" .config }}{{ with .config.sharing }}{{ with .mps }}{{ if .resources }}true{{ end }}{{ end }}{{ end }}{{ end -}}
{{- else if eq (toString $v) "true" -}}
true
{{- else if ne (toString $v) "false" -}}
{{- fail (printf "devicePlugin.mps.enabled: want auto, true or false, got %v" $v) -}}
{{- end -}}
{{- end }}

{{/* devicePlugin.cdi CONFIG: "true" when the DaemonSet running CONFIG writes the node's CDI spec (a cdi-annotations or cdi-cri device list strategy). */}}
{{- define "gpupack.cdi" -}}
{{- $values := .root.Values.devicePlugin.cdi | default dict -}}
{{- $v := ternary $values.enabled "auto" (hasKey $values "enabled") -}}
{{- if eq (toString $v) "auto" -}}
{{- $strategies := list -}}
{{- if kindIs "map" .config }}{{ with .config.flags }}{{ with .plugin }}{{ with .deviceListStrategy }}{{ $strategies = kindIs "string" . | ternary (list .) . }}{{ end }}{{ end }}{{ end }}{{ end -}}
{{- if or (has "cdi-annotations" $strategies) (has "cdi-cri" $strategies) }}true{{ end -}}
{{- else if eq (toString $v) "true" -}}
true
{{- else if ne (toString $v) "false" -}}
{{- fail (printf "devicePlugin.cdi.enabled: want auto, true or false, got %v" $v) -}}
{{- end -}}
{{- end }}

{{/* devicePlugin.driverRoot CONFIG: the host's driver root of the DaemonSet running CONFIG (flags.nvidiaDriverRoot, "/" when unset). */}}
{{- define "gpupack.driverRoot" -}}
{{- $root := "/" -}}
{{- if kindIs "map" .config }}{{ with .config.flags }}{{ with .nvidiaDriverRoot }}{{ $root = . }}{{ end }}{{ end }}{{ end -}}
{{- $root -}}
{{- end }}
