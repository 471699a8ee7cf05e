package api

// ServiceList is GET /api/v1/services: every service nodeexec has a node of, by name.
type ServiceList struct {
	Services []ServiceSummary `json:"services"`
}

// ServiceSummary is one service of the inventory: how many nodes, which versions run where, and how
// many of its nodes failed or are held now (by a deployment or a pass).
type ServiceSummary struct {
	Service   string         `json:"service"`
	Platform  Platform       `json:"platform"`
	Nodes     int            `json:"nodes"`
	Versions  []VersionHosts `json:"versions"`
	Failed    int            `json:"failed"`
	Deploying int            `json:"deploying"`
}

// VersionHosts are the nodes of a service that run one version ("": none yet, or none any more).
type VersionHosts struct {
	Version string   `json:"version"`
	Hosts   []string `json:"hosts"`
}
