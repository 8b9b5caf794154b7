// Package monitoring holds map646's monitoring kit, the files an operator
// copies: map646.rules.yml (Prometheus alerting rules), its promtool tests
// map646.rules.test.yml, and grafana-dashboard.json. Rules embeds the rules
// for the failover lab (lab/failover), which loads them into a real
// Prometheus; the tests of the kit are in cmd/map646/daemon
// (monitoring_test.go).
package monitoring

import _ "embed"

// Rules is map646.rules.yml.
//
//go:embed map646.rules.yml
var Rules []byte
