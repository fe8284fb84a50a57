"""NATS: the embedded server, connections, JetStream streams and consumers, accounts."""
