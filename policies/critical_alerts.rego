# A critical namespace declares at least one alert.
package sluice.critical_alerts

deny contains msg if {
	input.namespace.tier == "critical"
	not input.namespace.deleted
	count(input.namespace.alerts) == 0
	msg := "a critical namespace needs at least one alert under `spec.alerts`"
}
