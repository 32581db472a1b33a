{{- /*
Values the schema lets through but that would install something other than what the user meant,
mostly from a Kubecost networkCosts block carried over as is. Each problem is reported, all at once,
with what to do about it. Included by daemonset.yaml and ui-deployment.yaml.
*/}}
{{- define "netcost.checks" -}}
{{- $problems := list }}
{{- if eq .Values.enabled false }}
{{- $problems = append $problems "enabled is false (the default of Kubecost's networkCosts block), but without the agent this chart has nothing to install: remove the key or set it to true. In an umbrella chart, leave netcost out with the dependency's condition instead." }}
{{- end }}
{{- if and .Values.podSecurityPolicy .Values.podSecurityPolicy.enabled }}
{{- $problems = append $problems "podSecurityPolicy.enabled is true, but Kubernetes removed PodSecurityPolicy in 1.25 and this chart creates none: remove the key. The agent's namespace needs the privileged Pod Security level instead (docs/install.md, \"Before you start: the namespace's Pod Security level\")." }}
{{- end }}
{{- if kindIs "string" .Values.image }}
{{- $problems = append $problems (printf "image is a string (%s), the form of older Kubecost charts: this chart takes image.repository and image.tag. Remove image from a carried-over Kubecost block to run netcost's own image." .Values.image) }}
{{- else if contains "kubecost-network-costs" (toString .Values.image.repository) }}
{{- $problems = append $problems (printf "image.repository is Kubecost's network-costs image (%s): this chart runs netcost's agent, with arguments that image does not understand. Remove image from the carried-over Kubecost block." .Values.image.repository) }}
{{- end }}
{{- if and .Values.ui.enabled (not .Values.ui.prometheus.url) }}
{{- $problems = append $problems "ui.enabled is true but ui.prometheus.url is empty: netcost serve reads the agents' counters from the Prometheus that scrapes them. Set ui.prometheus.url, for example http://prometheus-server.prometheus.svc." }}
{{- end }}
{{- if $problems }}
{{- fail (printf "\n- %s" (join "\n- " $problems)) }}
{{- end }}
{{- end -}}
