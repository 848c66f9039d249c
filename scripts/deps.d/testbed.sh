# testbed: the resolver host runs Unbound with the lab zone stub-delegated to ns1/ns2.
want unbound unbound
