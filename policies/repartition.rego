# Growing a topic's partitions changes which partition each key maps to:
# per-key order breaks across the change, and a compacted topic keeps old
# and new values of a key in different partitions, so consumers that
# rebuild state from it read stale values. Every increase is a warning; on
# a compacted topic it is denied unless the topic sets
# `allow_repartition: true`.
package sluice.repartition

hint := "create a new topic with the partitions you need and migrate producers and consumers to it, or set `allow_repartition: true` on the topic once every consumer of its keys copes with keys moving"

growths contains [change.name, f.before, f.after] if {
	some change in input.changes
	change.kind == "kafka.topic"
	change.action == "update"
	some f in change.fields
	f.field == "partitions"
	f.after > f.before
}

compacted(name) if {
	some topic in input.namespace.topics
	topic.name == name
	contains(object.get(topic.config, "cleanup.policy", "delete"), "compact")
	not object.get(topic, "allow_repartition", false)
}

warn contains msg if {
	some [name, before, after] in growths
	not compacted(name)
	msg := sprintf(
		"topic `%s` grows from %d to %d partitions: keys move to other partitions, so per-key order does not hold across the change",
		[name, before, after],
	)
}

deny contains msg if {
	some [name, before, after] in growths
	compacted(name)
	msg := sprintf(
		"topic `%s` is compacted and would grow from %d to %d partitions: its keys would move, leaving old values in the old partitions",
		[name, before, after],
	)
}
