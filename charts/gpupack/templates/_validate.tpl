{{/*
gpupack.validate: the checks of values that values.schema.json cannot make
with a clear message (names derived into object names, values that depend
on each other), the required names again for `--skip-schema-validation`,
the scheduler's plugin args as the scheduler checks them
(gpupack.validatePluginArgs), and what the chart reads of the device
plugin's configs, in any letter case of their keys as the plugin reads them
(gpupack.deviceConfig, _helpers.tpl). Every message names the value by its
path in the values.

templates/validate/values.yaml runs it before any other template: Helm
renders templates deepest path first and, at one depth, in reverse order
of their paths, so templates/validate/ comes before templates/scheduler/
and templates/device-plugin/ (test/manifests checks that it stays first).
A refused value then reads "execution error at
(gpupack/templates/validate/values.yaml:1:4): <values path>: ...", not the
location of whichever object template Helm happened to render first, and
stops before anything renders half an object. The other templates include
it too, a guard should one ever run first.
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
{{- $_ := include "gpupack.image" (dict "image" ($s.image | default dict) "root" . "path" "scheduler.image") -}}
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
{{- if not (($s.metrics | default dict).service | default dict).enabled -}}
{{- fail "scheduler.metrics.serviceMonitor needs scheduler.metrics.service.enabled (the ServiceMonitor selects the metrics Service)" -}}
{{- end -}}
{{- end -}}
{{- include "gpupack.validatePluginArgs" $s.pluginArgs -}}
{{- end -}}

{{- /* The device plugin. */ -}}
{{- $dp := $v.devicePlugin | default dict -}}
{{- if $dp.enabled -}}
{{- $_ := include "gpupack.image" (dict "image" ($dp.image | default dict) "root" . "path" "devicePlugin.image") -}}
{{- $m := $dp.metrics | default dict -}}
{{- if and ($m.serviceMonitor | default dict).enabled ($m.podMonitor | default dict).enabled -}}
{{- fail "devicePlugin.metrics.serviceMonitor and devicePlugin.metrics.podMonitor are both enabled: both select the same device plugin pods (the ServiceMonitor through the Service gpupack-device-plugin-metrics), so Prometheus would scrape every target twice and store each series twice, under two jobs; enable one of them" -}}
{{- end -}}
{{- range $kind := list "serviceMonitor" "podMonitor" -}}
{{- if and (get $m $kind | default dict).enabled (not $m.enabled) -}}
{{- fail (printf "devicePlugin.metrics.%s needs devicePlugin.metrics.enabled (with it false, /metrics listens on the pod's loopback only and nothing can scrape it)" $kind) -}}
{{- end -}}
{{- end -}}
{{- if and ($m.serviceMonitor | default dict).enabled (not ($m.service | default dict).enabled) -}}
{{- fail "devicePlugin.metrics.serviceMonitor needs devicePlugin.metrics.service.enabled" -}}
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
{{- $_ = include "gpupack.migMonitor" (dict "root" $ "config" $c.config "path" $c.path) -}}
{{- $_ = include "gpupack.cdi" (dict "root" $ "config" $c.config "path" $c.path) -}}
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

{{/*
gpupack.validatePluginArgs PLUGINARGS: what the scheduler refuses at start
in scheduler.pluginArgs (GPUPackArgs; pkg/scheduler/apis/config/validation,
ValidateGPUPackArgs) and values.schema.json does not say clearly: the checks
that read other fields, or whose pattern would make an unreadable message.
A field left out (or null: helm drops it) has the scheduler's default
(pkg/scheduler/apis/config/v1/defaults.go). It refuses nothing the scheduler
accepts (test/manifests/chart_plugin_args_test.go gives every case to the
scheduler's own validation too). Values of the wrong type are the schema's
to refuse (the scheduler's decoder refuses them): here they pass, or are
refused, never mistaken for an error of another kind.
*/}}
{{- define "gpupack.validatePluginArgs" -}}
{{- $p := "scheduler.pluginArgs" -}}
{{- $a := . | default dict -}}
{{- if not (kindIs "map" $a) -}}
{{- fail (printf "%s: want a mapping of GPUPack's args, got %s" $p (kindOf $a)) -}}
{{- end -}}
{{- $defaults := dict "fragmentationWeight" 1 "topologyWeight" 2 "wholeResource" "nvidia.com/gpu" "sharedResource" "nvidia.com/gpu.shared" "migResourcePrefix" "nvidia.com/mig-" -}}
{{- $eff := dict -}}
{{- range $k, $d := $defaults -}}
{{- $v := index $a $k -}}
{{- $_ := set $eff $k (ternary $d $v (kindIs "invalid" $v)) -}}
{{- end -}}

{{- if and (eq (float64 $eff.fragmentationWeight) 0.0) (eq (float64 $eff.topologyWeight) 0.0) -}}
{{- fail (printf "%s.fragmentationWeight and %s.topologyWeight are both 0: the scheduler refuses it (a node's score would weigh nothing); keep one above 0 (left out, they are 1 and 2)" $p $p) -}}
{{- end -}}

{{- /* Extended resource names (topology.ResourceNameErrors): the schema checks their form. */ -}}
{{- range $k := list "wholeResource" "sharedResource" -}}
{{- $v := get $eff $k -}}
{{- if kindIs "string" $v -}}
{{- if contains "kubernetes.io/" $v -}}
{{- fail (printf "%s.%s %q: the kubernetes.io domains hold Kubernetes' native resources, not extended ones (the scheduler refuses it; the apiserver refuses it in a container's resources)" $p $k $v) -}}
{{- end -}}
{{- if hasPrefix "requests." $v -}}
{{- fail (printf "%s.%s %q: must not start with \"requests.\", ResourceQuota's prefix (the scheduler refuses it; the apiserver refuses it in a container's resources)" $p $k $v) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if and $eff.wholeResource (eq (toString $eff.wholeResource) (toString $eff.sharedResource)) -}}
{{- fail (printf "%s.sharedResource %q: the same as wholeResource (left out, nvidia.com/gpu): whole GPUs and time-shared replicas need names of their own (the scheduler refuses it)" $p (toString $eff.sharedResource)) -}}
{{- end -}}
{{- $prefix := $eff.migResourcePrefix -}}
{{- if and (kindIs "string" $prefix) $prefix -}}
{{- range $k := list "wholeResource" "sharedResource" -}}
{{- $v := get $eff $k -}}
{{- if and (kindIs "string" $v) (hasPrefix $prefix $v) -}}
{{- fail (printf "%s.migResourcePrefix %q claims %s %q (left out, %s) as a MIG resource: the scheduler refuses it; choose a prefix no other GPU resource starts with, such as nvidia.com/mig-" $p $prefix $k $v (get $defaults $k)) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- /* The workload distribution. */ -}}
{{- $w := $a.workload | default dict -}}
{{- if kindIs "map" $w -}}
{{- $priorWeight := ternary 100 $w.priorWeight (kindIs "invalid" $w.priorWeight) -}}
{{- $pin := ternary false $w.pin (kindIs "invalid" $w.pin) -}}
{{- if and (eq (float64 $priorWeight) 0.0) (ne (toString $pin) "true") -}}
{{- fail (printf "%s.workload.priorWeight 0 without workload.pin: true: the scheduler refuses it (with no weight and learning on, the first pod seen would be the whole distribution); give the prior a weight (left out, 100), or pin the distribution to it" $p) -}}
{{- end -}}
{{- $prior := $w.prior -}}
{{- if and (kindIs "slice" $prior) $prior -}}
{{- $total := 0.0 -}}
{{- range $i, $e := $prior -}}
{{- if kindIs "map" $e -}}
{{- $ep := printf "%s.workload.prior[%d]" $p $i -}}
{{- $kind := toString $e.kind -}}
{{- if has $kind (list "whole" "shared" "mig") -}}
{{- if and $e.milli (ne $kind "shared") -}}
{{- fail (printf "%s.milli %v: only for kind shared (this entry is %s; the scheduler refuses a field of another kind rather than ignore it)" $ep $e.milli $kind) -}}
{{- end -}}
{{- if and $e.migProfile (ne $kind "mig") -}}
{{- fail (printf "%s.migProfile %q: only for kind mig (this entry is %s; the scheduler refuses a field of another kind rather than ignore it)" $ep (toString $e.migProfile) $kind) -}}
{{- end -}}
{{- end -}}
{{- /* The GPU model (validation.modelProblem): as the device plugin publishes it (NVML's name). */ -}}
{{- $model := $e.model -}}
{{- if and (kindIs "string" $model) $model -}}
{{- if gt (len $model) 256 -}}
{{- fail (printf "%s.model: %d bytes, longer than 256 (the scheduler refuses it; NVML's GPU names are under 96)" $ep (len $model)) -}}
{{- end -}}
{{- if regexMatch `[\x00-\x1f\x7f-\x{9f}]` $model -}}
{{- fail (printf "%s.model %q: not text: a control character (the scheduler refuses it)" $ep $model) -}}
{{- end -}}
{{- /* One model or several joined by "|", each compared exactly: no empty alternative, no blanks around one ("A100 | H100" matches no GPU). What to write: the alternatives trimmed, the empty ones dropped. */ -}}
{{- $alts := splitList "|" $model -}}
{{- $names := list -}}
{{- range $alts -}}
{{- $t := regexReplaceAll `^\p{Z}+|\p{Z}+$` . "" -}}
{{- if $t -}}
{{- $names = append $names $t -}}
{{- end -}}
{{- end -}}
{{- $write := "leave model out (any model) or write a model name" -}}
{{- if $names -}}
{{- $write = printf "write %q" (join "|" $names) -}}
{{- end -}}
{{- $exact := "GPU models are compared exactly, as the device plugin publishes them (gpupack.io/topology gpus[].model)" -}}
{{- range $alts -}}
{{- if eq . "" -}}
{{- fail (printf "%s.model %q: an empty alternative (nothing before, after or between \"|\"): %s; the scheduler refuses it" $ep $model $write) -}}
{{- end -}}
{{- if regexMatch `^\p{Z}|\p{Z}$` . -}}
{{- if eq (len $alts) 1 -}}
{{- fail (printf "%s.model %q: leading or trailing blanks: %s: %s; the scheduler refuses it" $ep $model $exact $write) -}}
{{- end -}}
{{- fail (printf "%s.model %q: leading or trailing blanks in the alternative %q: %s, so it would match no GPU: %s (models joined by \"|\" without blanks); the scheduler refuses it" $ep $model . $exact $write) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- $total = addf $total (float64 ($e.weight | default 0)) -}}
{{- end -}}
{{- end -}}
{{- if le $total 0.0 -}}
{{- fail (printf "%s.workload.prior: the weights add up to %v: the scheduler refuses it; each entry's weight (0 when left out) is its task type's relative popularity, so give at least one a positive weight" $p $total) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end }}
