{{/*
gpupack.validate: the checks of values that values.schema.json cannot make
with a clear message (names derived into object names, values that depend
on each other), the required names again for `--skip-schema-validation`,
and what the chart reads of the device plugin's configs, in any letter case
of their keys as the plugin reads them (gpupack.deviceConfig, _helpers.tpl).
Every template includes it first: Helm runs templates deepest path first,
so whichever runs first stops a bad value before it renders half an object
(or fails on a nil map with a template error naming no value).
*/}}
{{- define "gpupack.validate" -}}
{{- $v := .Values -}}
{{- $label := `^[a-z0-9]([-a-z0-9]*[a-z0-9])?$` -}}
{{- $subdomain := `^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$` -}}
{{- $labelKey := `^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$` -}}
{{- $absPath := `^/\S*$` -}}

{{- /* The scheduler. */ -}}
{{- $s := $v.scheduler | default dict -}}
{{- if $s.enabled -}}
{{- $name := $s.schedulerName | default "" | toString -}}
{{- if or (not (regexMatch $subdomain $name)) (gt (len $name) 253) -}}
{{- fail (printf "scheduler.schedulerName %q: want a DNS-1123 subdomain (a-z, 0-9, '-', '.'; at most 253 characters) such as gpupack-scheduler: pods name it in spec.schedulerName and it names the leader-election Lease (left empty, kube-scheduler would run as default-scheduler)" $name) -}}
{{- end -}}
{{- if has $name (list "default-scheduler" "kube-scheduler") -}}
{{- fail (printf "scheduler.schedulerName %q: taken by the default scheduler (default-scheduler is its name, kube-scheduler its leader Lease): two schedulers would place the same pods, or gpupack's would take the default one's leadership; choose another name such as gpupack-scheduler" $name) -}}
{{- end -}}
{{- $ns := include "gpupack.schedulerNamespace" . -}}
{{- if or (not (regexMatch $label $ns)) (gt (len $ns) 63) -}}
{{- fail (printf "scheduler.namespace %q (empty: the release namespace): want a namespace name, a DNS-1123 label (a-z, 0-9, '-'; at most 63 characters)" $ns) -}}
{{- end -}}
{{- if and (not $s.leaderElect) (gt (int64 ($s.replicas | default 0)) 1) -}}
{{- fail (printf "scheduler.leaderElect is false with scheduler.replicas %v: without leader election every replica schedules, each with its own cache of the GPUs it assigned, and two could give one GPU twice; set leaderElect: true or replicas: 1" $s.replicas) -}}
{{- end -}}
{{- $sm := ($s.metrics | default dict).serviceMonitor | default dict -}}
{{- if $sm.enabled -}}
{{- $cred := $sm.credentials | default dict -}}
{{- $secret := $cred.name | default "" | toString -}}
{{- if and $secret (or (not (regexMatch $subdomain $secret)) (gt (len $secret) 253)) -}}
{{- fail (printf "scheduler.metrics.serviceMonitor.credentials.name %q: want the name of a Secret in the scheduler's namespace (a DNS-1123 subdomain), or empty for the chart's gpupack-metrics-reader-token" $secret) -}}
{{- end -}}
{{- $key := $cred.key | default "" | toString -}}
{{- if or (not (regexMatch `^[-._a-zA-Z0-9]+$` $key)) (gt (len $key) 253) -}}
{{- fail (printf "scheduler.metrics.serviceMonitor.credentials.key %q: want the key of the Secret's bearer token (letters, digits, '-', '_', '.'), such as token" $key) -}}
{{- end -}}
{{- if and (not $secret) (ne $key "token") -}}
{{- fail (printf "scheduler.metrics.serviceMonitor.credentials.key %q without credentials.name: the chart's Secret gpupack-metrics-reader-token holds its token under the key token; name your own Secret, or leave the key token" $key) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- /* The device plugin. */ -}}
{{- $dp := $v.devicePlugin | default dict -}}
{{- if $dp.enabled -}}
{{- $m := $dp.metrics | default dict -}}
{{- if and ($m.serviceMonitor | default dict).enabled ($m.podMonitor | default dict).enabled -}}
{{- fail "devicePlugin.metrics.serviceMonitor and devicePlugin.metrics.podMonitor are both enabled: both select the same device plugin pods (the ServiceMonitor through the Service gpupack-device-plugin-metrics), so Prometheus would scrape every target twice and store each series twice, under two jobs; enable one of them" -}}
{{- end -}}
{{- $root := $dp.kubeletRoot | default "" | toString -}}
{{- if not (regexMatch $absPath $root) -}}
{{- fail (printf "devicePlugin.kubeletRoot %q: want the kubelet's root directory on the node, an absolute path such as /var/lib/kubelet (the device plugin registers under <kubeletRoot>/device-plugins)" $root) -}}
{{- end -}}
{{- $config := $dp.config | default dict -}}
{{- if not (kindIs "map" $config.default) -}}
{{- fail (printf "devicePlugin.config.default: want a config file (a map; {} for the plugin's defaults), got %s (a null in a values file removes the chart's default)" (kindOf $config.default | replace "invalid" "nothing")) -}}
{{- end -}}
{{- $perNode := $config.perNode | default dict -}}
{{- if not (kindIs "map" $perNode) -}}
{{- fail (printf "devicePlugin.config.perNode: want a map of config name to config file, got %s" (kindOf $perNode)) -}}
{{- end -}}
{{- range $name, $body := $perNode -}}
{{- if or (not (regexMatch $label $name)) (gt (len $name) 41) -}}
{{- fail (printf "devicePlugin.config.perNode: config name %q: want a lower-case RFC 1123 label (a-z, 0-9, '-', starting and ending with a letter or digit) of at most 41 characters: it names the ConfigMap and DaemonSet gpupack-device-plugin-%s, whose app.kubernetes.io/name label may hold 63 characters, and is the value of the node label %s" $name $name ($config.nodeLabel | default "")) -}}
{{- end -}}
{{- if not (kindIs "map" $body) -}}
{{- fail (printf "devicePlugin.config.perNode.%s: want a config file (a map; {} for the plugin's defaults), got %s" $name (kindOf $body | replace "invalid" "null")) -}}
{{- end -}}
{{- end -}}
{{- if $perNode -}}
{{- $key := $config.nodeLabel | default "" | toString -}}
{{- $prefix := ternary (index (splitList "/" $key) 0) "" (contains "/" $key) -}}
{{- if or (not (regexMatch $labelKey $key)) (gt (len $prefix) 253) -}}
{{- fail (printf "devicePlugin.config.nodeLabel %q: want a node label key such as nvidia.com/device-plugin.config: it chooses the nodes of each perNode config" $key) -}}
{{- end -}}
{{- end -}}
{{- $configs := list (dict "path" (include "gpupack.configPath" "") "config" $config.default) -}}
{{- range $name := keys $perNode | sortAlpha }}{{ $configs = append $configs (dict "path" (include "gpupack.configPath" $name) "config" (get $perNode $name)) }}{{ end -}}
{{- range $c := $configs -}}
{{- /* What the chart reads of each config, checked as the device plugin checks it (_helpers.tpl). */ -}}
{{- $_ := include "gpupack.deviceConfig" (dict "config" $c.config "path" $c.path "out" dict) -}}
{{- if include "gpupack.mps" (dict "root" $ "config" $c.config "path" $c.path) -}}
{{- $mpsRoot := $dp.mps.root | default "" | toString -}}
{{- if not (regexMatch $absPath $mpsRoot) -}}
{{- fail (printf "devicePlugin.mps.root %q: want the MPS root on the node, an absolute path such as /run/nvidia/mps (MPS is on: devicePlugin.mps.enabled, or sharing.mps in a config)" $mpsRoot) -}}
{{- end -}}
{{- if not ($dp.mps.controlBinary | default "" | toString | regexMatch `^\S+$`) -}}
{{- fail "devicePlugin.mps.controlBinary: want the MPS control program, e.g. nvidia-cuda-mps-control (MPS is on: devicePlugin.mps.enabled, or sharing.mps in a config)" -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- $chartVolumes := list "device-plugins" "pod-resources" "config" "mps-root" "mps-shm" "cdi-specs" "driver-root" -}}
{{- $seen := list -}}
{{- range $vol := $dp.extraVolumes | default list -}}
{{- if has $vol.name $chartVolumes -}}
{{- fail (printf "devicePlugin.extraVolumes: volume name %q is the chart's (%s are taken): choose another" $vol.name (join ", " $chartVolumes)) -}}
{{- end -}}
{{- if has $vol.name $seen -}}
{{- fail (printf "devicePlugin.extraVolumes: volume name %q is listed twice" $vol.name) -}}
{{- end -}}
{{- $seen = append $seen $vol.name -}}
{{- end -}}
{{- end -}}

{{- /* The dashboard. */ -}}
{{- $d := $v.dashboard | default dict -}}
{{- if $d.enabled -}}
{{- $ns := $d.namespace | default .Release.Namespace -}}
{{- if or (not (regexMatch $label $ns)) (gt (len $ns) 63) -}}
{{- fail (printf "dashboard.namespace %q (empty: the release namespace): want a namespace name, a DNS-1123 label (a-z, 0-9, '-'; at most 63 characters)" $ns) -}}
{{- end -}}
{{- end -}}
{{- end }}
