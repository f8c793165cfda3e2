{{/* Pieces of networkpolicies.yaml. */}}
{{- define "leakhub.np.dns" -}}
- to:
    - namespaceSelector: {}
      podSelector:
        matchLabels:
          k8s-app: kube-dns
  ports:
    - {protocol: UDP, port: 53}
    - {protocol: TCP, port: 53}
{{- end -}}
{{- define "leakhub.np.keycloakPods" -}}
podSelector:
  matchLabels:
    app: keycloak
    app.kubernetes.io/instance: {{ include "leakhub.keycloakName" . }}
{{- end -}}
{{- define "leakhub.np.toDatabase" -}}
{{- if .Values.externalDatabase.enabled }}
- to:
    {{- range (.Values.externalDatabase.cidrs | default (list "0.0.0.0/0" "::/0")) }}
    - ipBlock: {cidr: {{ . }}}
    {{- end }}
  ports:
    - {protocol: TCP, port: {{ .Values.externalDatabase.port }}}
{{- else }}
- to:
    - podSelector:
        matchLabels:
          cnpg.io/cluster: {{ include "leakhub.pgClusterName" . }}
  ports:
    - {protocol: TCP, port: 5432}
{{- end }}
{{- end -}}
{{- define "leakhub.np.toKeycloak" -}}
- to:
    - {{- include "leakhub.np.keycloakPods" . | nindent 6 }}
  ports:
    - {protocol: TCP, port: 8080}
{{- end -}}
{{- define "leakhub.np.toSmtp" -}}
{{- if .Values.smtp.host }}
- to:
    {{- range (required "networkPolicy.smtpCIDRs is required with smtp.host: the relay's addresses (only the worker and Keycloak may reach them)" .Values.networkPolicy.smtpCIDRs) }}
    - ipBlock: {cidr: {{ . }}}
    {{- end }}
  ports:
    - {protocol: TCP, port: {{ .Values.smtp.port }}}
{{- end }}
{{- end -}}
