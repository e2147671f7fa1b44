# Retention that shrinks by more than half in one change deletes data the
# day it is applied: a warning, and denied for critical namespaces. Going
# from infinite (-1) to any finite retention counts as such a shrink.
package sluice.retention_shrink

hint := "shrink retention by at most half per applied change (30d, then 15d, then 7d), so that each step can be checked before data is deleted"

shrinks contains [change.name, before, after] if {
	some change in input.changes
	change.kind == "kafka.topic"
	change.action == "update"
	some f in change.fields
	f.field == "config.retention.ms"
	before := to_number(f.before)
	after := to_number(f.after)
	after >= 0
	more_than_half(before, after)
}

more_than_half(before, _) if before < 0

more_than_half(before, after) if {
	before >= 0
	after * 2 < before
}

describe(ms) := "infinite" if ms < 0

describe(ms) := sprintf("%vd", [ms / 86400000]) if {
	ms > 0
	ms % 86400000 == 0
}

describe(ms) := sprintf("%vh", [ms / 3600000]) if {
	ms > 0
	ms % 86400000 != 0
	ms % 3600000 == 0
}

describe(ms) := sprintf("%v ms", [ms]) if {
	ms >= 0
	not whole_hours(ms)
}

whole_hours(ms) if {
	ms > 0
	ms % 3600000 == 0
}

warn contains msg if {
	input.namespace.tier != "critical"
	some [name, before, after] in shrinks
	msg := sprintf(
		"topic `%s` retention shrinks by more than half, from %s to %s: older data is deleted once this is applied",
		[name, describe(before), describe(after)],
	)
}

deny contains msg if {
	input.namespace.tier == "critical"
	some [name, before, after] in shrinks
	msg := sprintf(
		"topic `%s` of a critical namespace: retention shrinks by more than half, from %s to %s",
		[name, describe(before), describe(after)],
	)
}
