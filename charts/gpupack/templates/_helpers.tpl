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
{{- fail (printf "%s.tag \"latest\": image tag \"latest\" is not allowed: the device plugin and the scheduler must agree on the protocol version; pin a release (empty: the chart's appVersion)" .path) -}}
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

{{/*
The device plugin's config files (devicePlugin.config.default and each of
devicePlugin.config.perNode) are read here as the plugin reads them
(pkg/config/v1, decode.go): a key names a field in any letter case, as Go's
encoding/json matches keys (strings.EqualFold: the Kelvin sign for k and
the long s for s too, which a Go regexp's (?i) matches alike), except in the
sections NVIDIA decodes by exact key (sharing.timeSlicing, sharing.mps and
their resources), where a key in another case is an unknown key the plugin
ignores. Every include of the helpers below passes "path", the config's
values path, for the messages.
*/}}

{{/* The top-level keys of a config (pkg/config/v1 Config's fields; test/manifests compares them with the Go type). */}}
{{- define "gpupack.configTopKeys" -}}version flags resources sharing imex health publish{{- end }}

{{/* configKind VALUE: what a config value is, for messages. */}}
{{- define "gpupack.configKind" -}}
{{- if kindIs "invalid" . }}null
{{- else if kindIs "map" . }}a mapping
{{- else if kindIs "slice" . }}a list
{{- else if kindIs "string" . }}a string
{{- else if kindIs "bool" . }}a boolean
{{- else }}a number
{{- end -}}
{{- end }}

{{/*
configKey (dict "map" MAP "name" NAME "path" PATH "out" OUT): the key of the
config mapping MAP (at PATH) that the device plugin reads as its field NAME
(any letter case), in OUT.key, and its value in OUT.value; neither is set
when MAP has none. Two keys for one field (migStrategy and MigStrategy) are
refused: the plugin would read both into the field and keep one (with only
a warning in its log);
and in devicePlugin.config.default a key in another case than the chart's
own (values.yaml) does not replace the chart's key but adds to it.
*/}}
{{- define "gpupack.configKey" -}}
{{- $found := list -}}
{{- range $k := keys .map | sortAlpha -}}
{{- if regexMatch (printf "^(?i:%s)$" $.name) $k }}{{ $found = append $found $k }}{{ end -}}
{{- end -}}
{{- if gt (len $found) 1 -}}
{{- $quoted := list -}}
{{- range $found }}{{ $quoted = append $quoted (printf "%q" .) }}{{ end -}}
{{- $quoted = ternary (join " and " $quoted) (join ", " $quoted) (eq (len $quoted) 2) -}}
{{- $hint := "" -}}
{{- if hasPrefix "devicePlugin.config.default" .path -}}
{{- $hint = printf " (values given for devicePlugin.config.default are merged into the chart's default config: a key in another letter case than the chart's own is added beside it; write it %s, or set %s: null to drop the chart's)" .name .name -}}
{{- end -}}
{{- fail (printf "%s: the keys %s name one field, %s: the device plugin matches keys in any letter case, would read them all into that field and silently keep one value; keep one key%s" .path $quoted .name $hint) -}}
{{- end -}}
{{- with $found -}}
{{- $_ := set $.out "key" (first .) -}}
{{- $_ := set $.out "value" (index $.map (first .)) -}}
{{- end -}}
{{- end }}

{{/*
deviceConfig (dict "config" CONFIG "path" PATH "out" OUT): what the chart
reads of one device plugin config, read as the plugin reads it, in OUT:
migStrategy (flags.migStrategy, "none" when unset), driverRoot
(flags.nvidiaDriverRoot, "/" when unset or empty), deviceListStrategies
(flags.plugin.deviceListStrategy as a list: a string is split at commas
and trimmed, as the plugin splits it; empty when unset) and mps (true when
sharing.mps has resources). It fails, naming the key, on what the plugin
would refuse in what it reads (and nothing the plugin accepts, but two
keys for one of these fields): an unknown top-level key, a value of the
wrong kind, a version, MIG strategy or device list strategy the plugin
does not know, a relative driver root. The plugin checks the rest of the
file when it starts.
*/}}
{{- define "gpupack.deviceConfig" -}}
{{- $path := .path -}}
{{- $out := .out -}}
{{- $_ := set $out "migStrategy" "none" -}}
{{- $_ = set $out "driverRoot" "/" -}}
{{- $_ = set $out "deviceListStrategies" (list) -}}
{{- $_ = set $out "mps" false -}}
{{- $config := .config -}}
{{- if kindIs "map" $config -}}
{{- /* The top level: the plugin refuses a key it does not know. */ -}}
{{- $known := include "gpupack.configTopKeys" . | splitList " " -}}
{{- range $k := keys $config | sortAlpha -}}
{{- $ok := false -}}
{{- range $n := $known }}{{ if regexMatch (printf "^(?i:%s)$" $n) $k }}{{ $ok = true }}{{ end }}{{ end -}}
{{- if not $ok -}}
{{- fail (printf "%s: unknown key %q: the device plugin refuses a config with a top-level key it does not know; its keys are %s (in any letter case)" $path $k (join ", " $known)) -}}
{{- end -}}
{{- end -}}
{{- $f := dict -}}
{{- $_ = include "gpupack.configKey" (dict "map" $config "name" "version" "path" $path "out" $f) -}}
{{- $v := $f.value -}}
{{- if not (or (kindIs "invalid" $v) (and (kindIs "string" $v) (has $v (list "" "v1")))) -}}
{{- fail (printf "%s.%s %s: the device plugin knows config version v1 only (empty or left out: v1)" $path $f.key (toJson $v)) -}}
{{- end -}}

{{- /* flags */ -}}
{{- $f = dict -}}
{{- $_ = include "gpupack.configKey" (dict "map" $config "name" "flags" "path" $path "out" $f) -}}
{{- $flags := $f.value -}}
{{- $flagsPath := printf "%s.%s" $path ($f.key | default "flags") -}}
{{- if not (or (kindIs "invalid" $flags) (kindIs "map" $flags)) -}}
{{- fail (printf "%s: want a mapping, got %s" $flagsPath (include "gpupack.configKind" $flags)) -}}
{{- end -}}
{{- if $flags -}}
{{- $f = dict -}}
{{- $_ = include "gpupack.configKey" (dict "map" $flags "name" "migStrategy" "path" $flagsPath "out" $f) -}}
{{- $v = $f.value -}}
{{- if not (kindIs "invalid" $v) -}}
{{- if not (and (kindIs "string" $v) (has $v (list "none" "single" "mixed"))) -}}
{{- fail (printf "%s.%s %s: want none, single or mixed (the device plugin refuses anything else)" $flagsPath $f.key (toJson $v)) -}}
{{- end -}}
{{- $_ = set $out "migStrategy" $v -}}
{{- end -}}
{{- $f = dict -}}
{{- $_ = include "gpupack.configKey" (dict "map" $flags "name" "nvidiaDriverRoot" "path" $flagsPath "out" $f) -}}
{{- $v = $f.value -}}
{{- if not (kindIs "invalid" $v) -}}
{{- if not (and (kindIs "string" $v) (or (eq $v "") (hasPrefix "/" $v))) -}}
{{- fail (printf "%s.%s %s: want the driver's root on the host, an absolute path such as / or /run/nvidia/driver (the device plugin refuses anything else)" $flagsPath $f.key (toJson $v)) -}}
{{- end -}}
{{- with $v }}{{ $_ = set $out "driverRoot" . }}{{ end -}}
{{- end -}}
{{- $f = dict -}}
{{- $_ = include "gpupack.configKey" (dict "map" $flags "name" "plugin" "path" $flagsPath "out" $f) -}}
{{- $plugin := $f.value -}}
{{- $pluginPath := printf "%s.%s" $flagsPath ($f.key | default "plugin") -}}
{{- if not (or (kindIs "invalid" $plugin) (kindIs "map" $plugin)) -}}
{{- fail (printf "%s: want a mapping, got %s" $pluginPath (include "gpupack.configKind" $plugin)) -}}
{{- end -}}
{{- if $plugin -}}
{{- $f = dict -}}
{{- $_ = include "gpupack.configKey" (dict "map" $plugin "name" "deviceListStrategy" "path" $pluginPath "out" $f) -}}
{{- $v = $f.value -}}
{{- if not (kindIs "invalid" $v) -}}
{{- $known := list "envvar" "volume-mounts" "cdi-annotations" "cdi-cri" -}}
{{- $items := list -}}
{{- if kindIs "string" $v -}}
{{- range $s := splitList "," $v }}{{ with trim $s }}{{ $items = append $items . }}{{ end }}{{ end -}}
{{- else if kindIs "slice" $v -}}
{{- range $s := $v -}}
{{- if not (kindIs "string" $s) -}}
{{- fail (printf "%s.%s %s: want a strategy or a list of strategies (strings: %s)" $pluginPath $f.key (toJson $v) (join ", " $known)) -}}
{{- end -}}
{{- $items = append $items $s -}}
{{- end -}}
{{- else -}}
{{- fail (printf "%s.%s %s: want a strategy or a list of strategies (%s), got %s" $pluginPath $f.key (toJson $v) (join ", " $known) (include "gpupack.configKind" $v)) -}}
{{- end -}}
{{- if not $items -}}
{{- fail (printf "%s.%s %s: empty: the device plugin refuses it; give one or more of %s, or leave it out for envvar" $pluginPath $f.key (toJson $v) (join ", " $known)) -}}
{{- end -}}
{{- range $s := $items -}}
{{- if not (has $s $known) -}}
{{- fail (printf "%s.%s: unknown strategy %q: want %s (a string may list several, separated by commas)" $pluginPath $f.key $s (join ", " $known)) -}}
{{- end -}}
{{- end -}}
{{- $_ = set $out "deviceListStrategies" $items -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- /* sharing.mps: NVIDIA decodes sharing.mps by exact key, resources included. */ -}}
{{- $f = dict -}}
{{- $_ = include "gpupack.configKey" (dict "map" $config "name" "sharing" "path" $path "out" $f) -}}
{{- $sharing := $f.value -}}
{{- $sharingPath := printf "%s.%s" $path ($f.key | default "sharing") -}}
{{- if not (or (kindIs "invalid" $sharing) (kindIs "map" $sharing)) -}}
{{- fail (printf "%s: want a mapping, got %s" $sharingPath (include "gpupack.configKind" $sharing)) -}}
{{- end -}}
{{- if $sharing -}}
{{- $f = dict -}}
{{- $_ = include "gpupack.configKey" (dict "map" $sharing "name" "mps" "path" $sharingPath "out" $f) -}}
{{- $mps := $f.value -}}
{{- $mpsPath := printf "%s.%s" $sharingPath ($f.key | default "mps") -}}
{{- if not (or (kindIs "invalid" $mps) (kindIs "map" $mps)) -}}
{{- fail (printf "%s: want a mapping, got %s" $mpsPath (include "gpupack.configKind" $mps)) -}}
{{- end -}}
{{- if $mps -}}
{{- $res := index $mps "resources" -}}
{{- if not (or (kindIs "invalid" $res) (kindIs "slice" $res)) -}}
{{- fail (printf "%s.resources: want a list, got %s" $mpsPath (include "gpupack.configKind" $res)) -}}
{{- end -}}
{{- if $res }}{{ $_ = set $out "mps" true }}{{ end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end }}

{{/* devicePlugin.migMonitor CONFIG PATH: "true" when the DaemonSet running CONFIG monitors MIG devices. */}}
{{- define "gpupack.migMonitor" -}}
{{- $v := .root.Values.devicePlugin.migMonitorDevices -}}
{{- if eq (toString $v) "auto" -}}
{{- $c := dict -}}
{{- $_ := include "gpupack.deviceConfig" (dict "config" .config "path" .path "out" $c) -}}
{{- if ne $c.migStrategy "none" }}true{{ end -}}
{{- else if eq (toString $v) "true" -}}
true
{{- else if ne (toString $v) "false" -}}
{{- fail (printf "devicePlugin.migMonitorDevices: want auto, true or false, got %v" $v) -}}
{{- end -}}
{{- end }}

{{/* devicePlugin.mps CONFIG PATH: "true" when the DaemonSet running CONFIG runs MPS control daemons (sharing.mps with resources). */}}
{{- define "gpupack.mps" -}}
{{- $v := .root.Values.devicePlugin.mps.enabled -}}
{{- if eq (toString $v) "auto" -}}
{{- $c := dict -}}
{{- $_ := include "gpupack.deviceConfig" (dict "config" .config "path" .path "out" $c) -}}
{{- if $c.mps }}true{{ end -}}
{{- else if eq (toString $v) "true" -}}
true
{{- else if ne (toString $v) "false" -}}
{{- fail (printf "devicePlugin.mps.enabled: want auto, true or false, got %v" $v) -}}
{{- end -}}
{{- end }}

{{/* devicePlugin.cdi CONFIG PATH: "true" when the DaemonSet running CONFIG writes the node's CDI spec (a cdi-annotations or cdi-cri device list strategy). */}}
{{- define "gpupack.cdi" -}}
{{- $values := .root.Values.devicePlugin.cdi | default dict -}}
{{- $v := ternary $values.enabled "auto" (hasKey $values "enabled") -}}
{{- if eq (toString $v) "auto" -}}
{{- $c := dict -}}
{{- $_ := include "gpupack.deviceConfig" (dict "config" .config "path" .path "out" $c) -}}
{{- if or (has "cdi-annotations" $c.deviceListStrategies) (has "cdi-cri" $c.deviceListStrategies) }}true{{ end -}}
{{- else if eq (toString $v) "true" -}}
true
{{- else if ne (toString $v) "false" -}}
{{- fail (printf "devicePlugin.cdi.enabled: want auto, true or false, got %v" $v) -}}
{{- end -}}
{{- end }}

{{/* devicePlugin.driverRoot CONFIG PATH: the host's driver root of the DaemonSet running CONFIG (flags.nvidiaDriverRoot, "/" when unset or empty). */}}
{{- define "gpupack.driverRoot" -}}
{{- $c := dict -}}
{{- $_ := include "gpupack.deviceConfig" (dict "config" .config "path" .path "out" $c) -}}
{{- $c.driverRoot -}}
{{- end }}

{{/* devicePlugin.configPath NAME: the values path of the config NAME ("": devicePlugin.config.default). */}}
{{- define "gpupack.configPath" -}}
{{- if . }}devicePlugin.config.perNode.{{ . }}{{ else }}devicePlugin.config.default{{ end -}}
{{- end }}
