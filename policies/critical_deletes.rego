# Topics of critical namespaces are never deleted by a plan, not even when
# the namespace's file is removed.
package sluice.critical_deletes

hint := "to decommission a critical namespace, first set `metadata.tier: standard` and apply that change on its own; a later change can then delete its topics or its file"

deny contains msg if {
	input.namespace.tier == "critical"
	some change in input.changes
	change.kind == "kafka.topic"
	change.action == "delete"
	msg := sprintf("the plan deletes topic `%s` of a critical namespace", [change.name])
}
