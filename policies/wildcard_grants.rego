# Access is granted to named services and teams, never to a wildcard.
package sluice.wildcard_grants

deny contains msg if {
	some grant in input.namespace.access
	contains(grant.principal, "*")
	msg := sprintf(
		"grants %s to the wildcard principal `%s`; name the service or team",
		[concat(", ", grant.permissions), grant.principal],
	)
}
