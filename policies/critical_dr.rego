# A critical namespace needs a disaster-recovery policy with an RPO of at most 15m.
package sluice.critical_dr

max_rpo_ms := 900000

deny contains msg if {
	input.namespace.tier == "critical"
	not input.namespace.deleted
	object.get(input.namespace, "disaster_recovery", null) == null
	msg := "a critical namespace needs a `disaster_recovery` policy with an `rpo` of at most 15m"
}

deny contains msg if {
	input.namespace.tier == "critical"
	dr := input.namespace.disaster_recovery
	dr != null
	object.get(dr, "rpo_ms", null) == null
	msg := "a critical namespace needs `disaster_recovery.rpo` set, at most 15m"
}

deny contains msg if {
	input.namespace.tier == "critical"
	rpo := input.namespace.disaster_recovery.rpo_ms
	is_number(rpo)
	rpo > max_rpo_ms
	msg := sprintf("a critical namespace needs an RPO of at most 15m; it has %vs", [rpo / 1000])
}
