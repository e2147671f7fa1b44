# Outside environments marked `dev`, every topic keeps at least 3 replicas.
package sluice.replication_factor

min_replicas := 3

deny contains msg if {
	input.environment.stage != "dev"
	some topic in input.namespace.topics
	topic.replication_factor < min_replicas
	msg := sprintf(
		"topic `%s` has replication factor %d; outside dev environments it needs at least %d",
		[topic.name, topic.replication_factor, min_replicas],
	)
}
