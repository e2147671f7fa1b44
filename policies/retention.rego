# Retention beyond 30 days (or infinite) is for critical namespaces only.
# Compact-only topics are exempt: retention does not delete their data.
package sluice.retention

max_ms := 2592000000

too_long(ms) if ms > max_ms

too_long(ms) if ms < 0

deletes(topic) if object.get(topic.config, "cleanup.policy", "delete") != "compact"

deny contains msg if {
	input.namespace.tier != "critical"
	some topic in input.namespace.topics
	deletes(topic)
	ms := to_number(topic.config["retention.ms"])
	too_long(ms)
	msg := sprintf(
		"topic `%s` keeps data for %s; above 30d needs tier `critical`",
		[topic.name, describe(ms)],
	)
}

describe(ms) := "ever" if ms < 0

describe(ms) := sprintf("%vd", [ms / 86400000]) if ms >= 0
